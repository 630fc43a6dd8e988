#include "saga/engine/step_engine.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>

#include "orders/adapters/event_envelope.hpp"
#include "orders/adapters/order_event_payloads.hpp"
#include "orders/adapters/order_json.hpp"
#include "orders/adapters/pg_order_repository.hpp"
#include "platform/log/logging.hpp"
#include "platform/log/trace_context.hpp"
#include "platform/metrics/registry.hpp"
#include "platform/outbox/after_commit_publisher.hpp"
#include "platform/outbox/outbox.hpp"
#include "platform/pg/array.hpp"
#include "platform/pg/hex.hpp"
#include "platform/pg/pg_errors.hpp"
#include "platform/runtime/offload.hpp"

namespace op::saga {

using namespace orders;

struct step_engine::locked_saga {
  bool retry_pending = false;  // a retry of the stage asked for waits for this order
  std::optional<saga_row> row;
};

struct step_engine::step_writes {
  struct saga_change {
    const saga_row* row;
    saga_transition transition;
  };
  std::vector<saga_change> sagas;
  // Events of steps a saga's own list lacks, passed on unchanged (orders in flight across a
  // release that added the step).
  std::vector<std::pair<const saga_row*, const declared_step*>> passed_on;
  // Orders reaching their final state, counted once the transaction committed.
  std::vector<std::pair<saga_state, double>> finals;
};

namespace {

using std::chrono::milliseconds;

// Who asks for a transition outside a stage's step, in logs.
const char* const deadline_caller = "deadline";
const char* const cancel_caller = "cancel";

const char* const order_placed_event_type = "OrderPlaced";
const char* const order_failed_event_type = "OrderFailed";

// Step names and the owed list are stored as text[]; names are [a-z][a-z0-9_-]*, so a comma
// joins them unambiguously.
std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) {
    if (!out.empty())
      out += ',';
    out += name;
  }
  return out;
}

std::vector<std::string> split_names(const std::string& joined) {
  std::vector<std::string> out;
  std::string name;
  std::istringstream in(joined);
  while (std::getline(in, name, ','))
    if (!name.empty())
      out.push_back(name);
  return out;
}

// A saga's state as the statements below select it, from column `first` on: status, cancel
// reason, cancel detail, the step list, the step's place in it, the compensations owed.
saga_state read_saga_state(const pqxx::row& r, int first) {
  saga_state state;
  state.status = r[first].as<std::string>();
  state.reason = r[first + 1].as<std::string>();
  state.detail = r[first + 2].as<std::string>();
  state.steps = split_names(r[first + 3].is_null() ? "" : r[first + 3].as<std::string>());
  state.position = r[first + 4].as<std::size_t>();
  state.owed = split_names(r[first + 5].as<std::string>());
  return state;
}

void count_message(std::string_view stage, const std::string& outcome, double seconds) {
  auto& registry = metrics::global();
  registry
      .get_counter("pipeline_messages_total", "Messages handled by a saga stage, by outcome.",
                   {{"stage", std::string(stage)}, {"outcome", outcome}})
      .inc();
  registry
      .get_histogram("pipeline_stage_duration_seconds",
                     "Time a saga stage took for one message, retries and gateway included.",
                     {{"stage", std::string(stage)}})
      .observe(seconds);
}

metrics::counter& cancelled_counter(const std::string& reason) {
  return metrics::global().get_counter(
      "orders_cancelled_total", "Orders that ended CANCELLED, by reason.", {{"reason", reason}});
}

metrics::counter& deadline_counter(const std::string& step) {
  return metrics::global().get_counter("saga_deadlines_expired_total",
                                       "Sagas compensated because a step passed its deadline.",
                                       {{"step", step}});
}

metrics::counter& republished_counter(const std::string& step) {
  return metrics::global().get_counter(
      "saga_events_republished_total",
      "Events sent again for orders waiting at a step too long (a lost event), by that step.",
      {{"step", step}});
}

metrics::counter& retries_counter(std::string_view stage) {
  return metrics::global().get_counter(
      "pipeline_retries_scheduled_total",
      "Saga steps scheduled to run again after a transient failure.",
      {{"stage", std::string(stage)}});
}

// A public step's view of one order in the engine's transaction.
class engine_step_context final : public order_pipeline::step_context {
 public:
  engine_step_context(transaction_scope& scope, const saga_row& row, bool awaited,
                      int earlier_failures, const std::any* prepared)
      : scope_(scope), awaited_(awaited), earlier_failures_(earlier_failures), prepared_(prepared) {
    const auto& rows = scope.rows();
    for (std::size_t i = 0; i < rows.size(); ++i)
      if (rows[i] == &row)
        current_ = &scope.orders()[i];
    if (!current_) {
      own_ = to_public_order(row.order);
      current_ = &own_;
    }
  }

  const order_pipeline::order& current_order() const override { return *current_; }
  pqxx::work& transaction() override { return scope_.tx(); }
  bool awaited() const override { return awaited_; }
  int earlier_failures() const override { return earlier_failures_; }
  const std::any& prepared() const override {
    static const std::any none;
    return prepared_ ? *prepared_ : none;
  }
  std::vector<const order_pipeline::order*> transaction_orders() const override {
    std::vector<const order_pipeline::order*> out;
    if (current_ == &own_)
      return {current_};
    for (const auto& o : scope_.orders())
      out.push_back(&o);
    return out;
  }
  bool under_lock() const override { return scope_.under_lock(); }

 protected:
  order_pipeline::transaction_part* find_part(std::type_index type) override {
    return scope_.find_part(type);
  }
  order_pipeline::transaction_part& add_part(
      std::type_index type, std::unique_ptr<order_pipeline::transaction_part> part) override {
    return scope_.add_part(type, std::move(part));
  }

 private:
  transaction_scope& scope_;
  bool awaited_;
  int earlier_failures_;
  const std::any* prepared_;
  order_pipeline::order own_;
  const order_pipeline::order* current_ = nullptr;
};

// Counts an order reaching its final state and how long it took from placement.
void record_final(const saga_state& next, double age_seconds) {
  auto& registry = metrics::global();
  if (next.status == confirmed_status)
    registry.get_counter("orders_confirmed_total", "Orders that reached CONFIRMED.").inc();
  else if (next.status == cancelled_status)
    cancelled_counter(next.reason).inc();
  else
    registry.get_counter("orders_failed_total", "Orders that ended FAILED.").inc();
  registry
      .get_histogram("order_end_to_end_seconds",
                     "Time from placement to the final state (CONFIRMED, CANCELLED, FAILED).",
                     {{"status", next.status}})
      .observe(age_seconds);
}

}  // namespace

step_engine::step_engine(pg::connection_pool& pool, asio::thread_pool& blocking,
                         const dead_letter_queue& dead_letters, engine_settings settings)
    : pool_(pool),
      blocking_(blocking),
      dead_letters_(dead_letters),
      settings_(std::move(settings)) {}

void step_engine::declare(order_pipeline::step step) {
  if (definition_)
    throw std::logic_error("step " + step.name + " declared after the saga was sealed");
  if (!step.action)
    throw std::invalid_argument("step " + step.name + ": it has no action");
  if (!step.retry || !step.deadline || step.topic.empty() || step.event_type.empty())
    throw std::logic_error("step " + step.name + ": settings not resolved before declare");
  auto declared = std::make_unique<declared_step>();
  declared->definition.name = step.name;
  declared->definition.status = step.status;
  declared->definition.has_compensation = static_cast<bool>(step.compensation);
  declared->definition.may_land_late = step.may_land_late;
  declared->definition.has_finalizer = static_cast<bool>(step.finalizer);
  declared->definition.timeout_reason = step.timeout_reason;
  declared->definition.failure_reason = step.failure_reason;
  declared->retry.max_retries = step.retry->max_retries;
  declared->retry.base_delay = step.retry->backoff;
  declared->retry.multiplier = step.retry->multiplier;
  declared->retry.jitter = step.retry->jitter;
  declared->decide = [action = step.action](const saga_row& row, step_context& engine) {
    engine_step_context context(engine.scope, row, engine.awaited, engine.earlier_failures,
                                engine.prepared);
    return action(context);
  };
  declared->spec = std::move(step);
  declared->batcher = std::make_unique<runtime::batcher<step_job>>(
      blocking_, [this](const std::vector<step_job*>& jobs) { apply_steps(jobs); },
      settings_.batch_size, settings_.parallel_batches);
  if (declared->spec.prepare)
    declared->peeks = std::make_unique<runtime::batcher<peek_job>>(
        blocking_,
        [this, stage = std::string_view(declared->spec.name)](const std::vector<peek_job*>& jobs) {
          find_awaiting(stage, jobs);
        },
        settings_.batch_size, settings_.parallel_batches);
  steps_.push_back(std::move(declared));
}

void step_engine::seal() {
  std::vector<step_definition> definitions;
  for (const auto& step : steps_)
    definitions.push_back(step->definition);
  auto made = saga_definition::make(std::move(definitions));
  if (auto* error = std::get_if<definition_error>(&made))
    throw std::invalid_argument("the saga's steps: " + describe(*error));
  definition_.emplace(std::move(std::get<saga_definition>(made)));

  // Every outcome series exists from the start, at zero, so rates and alerts work before
  // the first such order.
  auto& registry = metrics::global();
  registry.get_counter("orders_confirmed_total", "Orders that reached CONFIRMED.");
  registry.get_counter("orders_failed_total", "Orders that ended FAILED.");
  cancelled_counter(std::string(customer_cancelled_reason));
  for (const auto& step : steps_) {
    const auto& spec = step->spec;
    for (const auto& reason : spec.rejection_reasons)
      cancelled_counter(reason);
    cancelled_counter(spec.timeout_reason);
    if (!spec.failure_reason.empty())
      cancelled_counter(spec.failure_reason);
    deadline_counter(spec.name);
    republished_counter(spec.name);
    retries_counter(spec.name);
  }
}

int step_engine::register_step_list(pqxx::connection& connection) const {
  pqxx::work tx(connection);
  const auto names = join_names(definition().step_names());
  std::vector<std::string> topic_list;
  for (const auto& step : steps_)
    topic_list.push_back(step->spec.topic);
  const std::vector<std::string_view> topics(topic_list.begin(), topic_list.end());
  // Two replicas starting at once may both insert: the unique list keeps one, and the second
  // reads it back. The topics are this release's (a changed topic name applies to the list).
  auto id = tx.exec_params1(
                  "INSERT INTO saga_step_lists (steps, topics) VALUES (string_to_array($1, ','),"
                  " $2::text[]) ON CONFLICT (steps) DO UPDATE SET topics = EXCLUDED.topics"
                  " RETURNING id",
                  names, pg::text_array(topics))[0]
                .as<int>();
  tx.commit();
  return id;
}

std::vector<step_engine::route> step_engine::routes_for_undeclared_steps(
    pqxx::connection& connection) const {
  // The topics the declared steps consume already: each step's predecessor's topic.
  std::set<std::string> consumed;
  for (std::size_t i = 1; i < steps_.size(); ++i)
    consumed.insert(steps_[i - 1]->spec.topic);
  std::vector<route> out;
  pqxx::read_transaction tx(connection);
  for (const auto& r : tx.exec("SELECT array_to_string(steps, ','), array_to_string(topics, ',')"
                               " FROM saga_step_lists ORDER BY id")) {
    auto steps = split_names(r[0].as<std::string>());
    auto topics = split_names(r[1].as<std::string>());
    for (std::size_t i = 0; i + 1 < steps.size() && i < topics.size(); ++i) {
      if (find_step(steps[i]) || consumed.count(topics[i]))
        continue;
      // The first step after it, in that list, that this program declares.
      for (std::size_t next = i + 1; next < steps.size(); ++next) {
        if (find_step(steps[next])) {
          out.push_back({topics[i], steps[next]});
          consumed.insert(topics[i]);
          break;
        }
      }
    }
  }
  return out;
}

void step_engine::prepare_statements(pqxx::connection& c) {
  // Locks the orders (each row is also its saga) with an advisory lock per order, in the
  // order of the locks' keys, so two transactions never wait for each other in a circle. A row lock
  // (FOR UPDATE) would log a record for every order at every step, about 230 bytes of WAL per
  // order; saga_write, the only statement that changes an order's saga, runs under these
  // locks. The sorted subquery (OFFSET 0 keeps it apart) feeds the lock calls in its order.
  c.prepare("saga_lock_orders",
            "SELECT count(pg_advisory_xact_lock(hashtext('order-pipeline.order'), key))"
            " FROM (SELECT DISTINCT hashtext(id) AS key FROM unnest($1::text[]) AS o(id)"
            " ORDER BY key OFFSET 0) keys");
  // Reads the locked orders with their items: one row per item. A statement of its own after
  // saga_lock_orders, so its snapshot holds every change committed before the locks were
  // granted. For a stage ($2; null for none) it also tells whether a retry of that stage is
  // pending for the order: its row, not the message, is then what runs the step.
  c.prepare("saga_lock",
            "WITH saga AS (SELECT * FROM orders WHERE order_id = ANY($1::text[]))"
            " SELECT " +
                order_select_list +
                ", $2::text IS NOT NULL AND EXISTS (SELECT 1 FROM stage_retries r"
                " WHERE r.stage = $2 AND r.order_id = saga.order_id), status,"
                " coalesce(cancel_reason, ''), coalesce(cancel_detail, ''),"
                " (SELECT array_to_string(l.steps, ',') FROM saga_step_lists l"
                " WHERE l.id = saga.step_list), step_index, array_to_string(owed, ','),"
                " extract(epoch FROM clock_timestamp() - created_at)::float8,"
                " coalesce(trace_id, ''),"
                " extract(epoch FROM clock_timestamp() - step_started_at)::float8, i.product_id,"
                " coalesce(i.product_name, ''), i.quantity, i.price_cents"
                " FROM saga" +
                order_lines_join_sql("saga") + " ORDER BY order_id, i.line_no");
  // The orders' saga state and their history in one statement ($7: the saga has ended);
  // answers each order's new updatedAt. An ended saga leaves running_sagas in the same
  // statement. The update changes no indexed column, so it is HOT wherever its page has room
  // (sql/011_running_sagas.sql). A new status goes ahead of the history's entries, so the
  // update logs the new entry alone (sql/010_history_in_order_row.sql).
  c.prepare("saga_write",
            "WITH written AS (UPDATE orders o SET history = CASE WHEN o.status <> i.state"
            " THEN ROW(i.state, i.reason, NULLIF(i.detail, ''), now())::order_history_entry"
            " || o.history ELSE o.history END,"
            " step_started_at = CASE WHEN o.status <> i.state"
            " OR o.step_index <> i.step_index THEN now() ELSE o.step_started_at END,"
            " status = i.state, cancel_reason = i.reason, cancel_detail = NULLIF(i.detail, ''),"
            " step_index = i.step_index, owed = string_to_array(i.owed, ','),"
            " finished_at = CASE WHEN i.ended THEN coalesce(o.finished_at, now()) END,"
            " updated_at = now() FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
            " $5::int[], $6::text[], $7::bool[]) AS i(order_id, state, reason, detail,"
            " step_index, owed, ended)"
            " WHERE o.order_id = i.order_id RETURNING o.order_id, i.ended, " +
                iso_timestamp_sql("o.updated_at") +
                " AS updated_at), ended AS (DELETE FROM running_sagas r USING written w"
                " WHERE w.ended AND r.order_id = w.order_id)"
                " SELECT order_id, updated_at FROM written");
  // The sagas of the orders $1 that wait for a step (by its place in their own list), with
  // their orders' totals and payment methods, and whether a message of the step $2 would run
  // each: a message ($3 null) when no retry of it is pending, a retry ($3 with $4 attempts)
  // when it is still there. One row per element of $1 whose order exists, with its place n.
  c.prepare("saga_awaiting",
            "SELECT " + order_select_list +
                ", status, coalesce(cancel_reason, ''), coalesce(cancel_detail, ''),"
                " (SELECT array_to_string(l.steps, ',') FROM saga_step_lists l"
                " WHERE l.id = o.step_list), step_index, array_to_string(owed, ','),"
                " CASE WHEN w.retry_id IS NULL THEN NOT EXISTS (SELECT 1 FROM stage_retries r"
                " WHERE r.stage = $2 AND r.order_id = o.order_id) ELSE EXISTS (SELECT 1 FROM"
                " stage_retries r WHERE r.id = w.retry_id AND r.attempts = w.attempts) END, w.n"
                " FROM unnest($1::text[], $3::bigint[], $4::int[]) WITH ORDINALITY"
                " AS w(order_id, retry_id, attempts, n) JOIN orders o USING (order_id)");
  c.prepare("saga_state",
            "SELECT status, coalesce(cancel_reason, ''), coalesce(cancel_detail, ''),"
            " (SELECT array_to_string(l.steps, ',') FROM saga_step_lists l"
            " WHERE l.id = o.step_list), step_index, array_to_string(owed, ',')"
            " FROM orders o WHERE order_id = $1");
  c.prepare("saga_schedule_retry",
            "INSERT INTO stage_retries (stage, order_id, topic, partition, \"offset\","
            " message_key, payload, headers, attempts, error_class, last_error,"
            " first_failure_at, due_at) VALUES ($1, $2, $3, $4, $5, $6, decode($7, 'hex'),"
            " $8::jsonb, $9, $10, $11, coalesce($12::timestamptz, now()),"
            " now() + make_interval(secs => $13))"
            " ON CONFLICT (stage, order_id) DO UPDATE SET topic = EXCLUDED.topic,"
            " partition = EXCLUDED.partition, \"offset\" = EXCLUDED.\"offset\","
            " message_key = EXCLUDED.message_key, payload = EXCLUDED.payload,"
            " headers = EXCLUDED.headers, attempts = EXCLUDED.attempts,"
            " error_class = EXCLUDED.error_class, last_error = EXCLUDED.last_error,"
            " last_failure_at = now(), due_at = EXCLUDED.due_at");
  // A claimed retry is leased for a minute: if its replica dies, another one runs it then.
  // Only retries of the stages $2 this replica runs (a split deployment's pay retries wait
  // for a replica with the payment gateway), and those of steps this program does not
  // declare at all ($3: its steps), left by a release that did: run_retry hands them on.
  c.prepare("saga_claim_due_retries",
            "UPDATE stage_retries SET due_at = now() + interval '60 seconds' WHERE id IN"
            " (SELECT id FROM stage_retries WHERE due_at <= now() AND (stage = ANY($2::text[])"
            " OR stage <> ALL($3::text[]))"
            " ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING id, stage, attempts,"
            " to_char(first_failure_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
            " topic, partition, \"offset\", message_key, encode(payload, 'hex'), headers::text");
  c.prepare("saga_take_retry", "DELETE FROM stage_retries WHERE id = $1 AND attempts = $2");
  c.prepare("saga_count_retries", "SELECT count(*) FROM stage_retries");
  // Sagas waiting for a step (the one at their step_index in their own list) longer than its
  // deadline ($1 step names, $2 their deadlines in seconds, $3 for any other step), among the
  // statuses $4 a running saga shows. A step starts after its order was placed, so only
  // running orders placed longer ago than the shortest deadline ($6) are read.
  c.prepare("saga_overdue",
            "SELECT o.order_id FROM running_sagas s JOIN orders o USING (order_id)"
            " JOIN saga_step_lists l ON l.id = o.step_list"
            " LEFT JOIN unnest($1::text[], $2::float8[]) AS d(step, seconds)"
            " ON d.step = l.steps[o.step_index + 1]"
            " WHERE s.created_at < now() - make_interval(secs => $6::float8)"
            " AND o.status = ANY($4::text[]) AND o.step_started_at < now() - make_interval(secs =>"
            " coalesce(d.seconds, $3::float8)) ORDER BY o.step_started_at LIMIT $5");
  // Running orders at one step longer than $1 seconds, without a pending retry (that runs the
  // step instead), longest waiting first; nothing at all while another replica does this.
  c.prepare("saga_stalled",
            "SELECT o.order_id, o.status, coalesce(o.cancel_reason, ''),"
            " coalesce(o.cancel_detail, ''), (SELECT array_to_string(l.steps, ',')"
            " FROM saga_step_lists l WHERE l.id = o.step_list), o.step_index,"
            " array_to_string(o.owed, ','), " +
                iso_timestamp_sql("o.updated_at") +
                ", coalesce(o.trace_id, '') FROM running_sagas s JOIN orders o USING (order_id)"
                " WHERE pg_try_advisory_xact_lock(hashtext('order-pipeline.republish'))"
                " AND s.created_at < now() - make_interval(secs => $1)"
                " AND o.step_started_at < now() - make_interval(secs => $1) AND NOT EXISTS"
                " (SELECT 1 FROM stage_retries r WHERE r.order_id = o.order_id)"
                " AND o.order_id <> ALL($3::text[]) ORDER BY o.step_started_at LIMIT $2");
}

double step_engine::unit_random() {
  thread_local std::mt19937_64 engine{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
}

asio::awaitable<bool> step_engine::while_unavailable(
    std::string_view stage, const std::string& subject,
    std::function<asio::awaitable<void>()>& attempt) {
  auto logger = log::get("saga");
  for (int attempts = 1;; ++attempts) {
    std::string reason;
    try {
      co_await attempt();
      co_return true;
    } catch (const std::exception& e) {
      if (!pg::is_unavailable(e))
        throw;
      reason = e.what();
    }
    if (abandoning_)
      co_return false;
    auto delay = milliseconds(std::min(5000, 100 << std::min(attempts, 6)));
    logger->warn("{}: {} waiting {} ms for the database: {}", stage, subject, delay.count(),
                 reason);
    asio::steady_timer timer(co_await asio::this_coro::executor, delay);
    co_await timer.async_wait(asio::use_awaitable);
  }
}

asio::awaitable<bool> step_engine::while_unavailable(std::string_view stage,
                                                     const std::string& subject,
                                                     std::function<void()>& work) {
  std::function<asio::awaitable<void>()> attempt = [&]() -> asio::awaitable<void> {
    auto run_once = [&work] {
      work();
      return true;
    };
    co_await runtime::offload(blocking_, run_once);
  };
  co_return co_await while_unavailable(stage, subject, attempt);
}

step_engine::declared_step& step_engine::step_named(std::string_view name) {
  for (auto& step : steps_)
    if (step->spec.name == name)
      return *step;
  throw std::logic_error(fmt::format("no step {} was declared", name));
}

const step_engine::declared_step* step_engine::find_step(std::string_view name) const {
  for (const auto& step : steps_)
    if (step->spec.name == name)
      return step.get();
  return nullptr;
}

bool step_engine::is_redelivery(const declared_step& step, const saga_state& state,
                                bool retry_pending) const {
  // The saga's own state is the record of what was applied, so no event ids are kept: the
  // step has run when the saga no longer waits for it, and it runs again only from its retry
  // while one is pending. A step whose effect may land late still hears of its order once the
  // saga was cancelled: a success then is compensated.
  // The pending retry is read in the lock statement's snapshot, from before any wait for the
  // lock: if two replicas run the same message at once (a rebalance) and the first schedules a
  // retry, the second runs the step again, as when it prepares twice: calls out are idempotent
  // by order id, and the retry it finds later changes nothing once the saga moved on.
  if (retry_pending)
    return true;
  if (awaited_step(definition(), state) == step.spec.name)
    return false;
  return !(step.definition.may_land_late && state.status == cancelled_status);
}

const std::string& step_engine::topic_of(std::string_view step) const {
  const auto* declared = find_step(step);
  if (!declared)
    throw std::logic_error(fmt::format("no step {} was declared", step));
  return declared->spec.topic;
}

asio::awaitable<void> step_engine::handle(std::string_view stage,
                                          const kafka::consumed_message& message) {
  co_await run(step_named(stage), message, nullptr);
}

asio::awaitable<void> step_engine::run(declared_step& step, const kafka::consumed_message& message,
                                       const stage_retry* retry) {
  const auto& name = step.spec.name;
  if (!step.spec.prepare) {
    co_await run_step(name, message, step.decide, retry);
    co_return;
  }
  auto envelope = decode_event_envelope(message.value);
  if (!envelope) {
    const step_effect nothing;  // run_step dead-letters it
    co_await run_step(name, message, nothing, retry);
    co_return;
  }
  // Prepare (call out) only for an order that waits for this step and whose event (or retry)
  // is new. A duplicate that slips through prepares twice: a remote call must be idempotent
  // by order id.
  peek_job peek_at{envelope->order_id, retry, std::nullopt};
  std::function<asio::awaitable<void>()> peek = [&]() -> asio::awaitable<void> {
    peek_at.order.reset();
    co_await step.peeks->run(peek_at);
  };
  const auto& order = peek_at.order;
  const std::string subject = "order " + envelope->order_id;
  try {
    if (!co_await while_unavailable(name, subject, peek))
      co_return;
  } catch (const std::exception& e) {
    log::get("saga")->error("{}: order {}: {}", name, envelope->order_id, e.what());
  }
  std::any prepared;
  if (order)
    prepared = co_await step.spec.prepare(to_public_order(*order));
  const step_effect effect = [&](const saga_row& row, step_context& context) {
    if (!prepared.has_value())
      return step_decision::nothing();
    context.prepared = &prepared;
    return step.decide(row, context);
  };
  co_await run_step(name, message, effect, retry);
}

asio::awaitable<void> step_engine::run_step(std::string_view stage,
                                            const kafka::consumed_message& message,
                                            const step_effect& effect, const stage_retry* retry) {
  // The step's own name, which outlives the step (the caller's may not).
  auto& step = step_named(stage);
  stage = step.spec.name;
  auto started = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  };
  auto envelope = decode_event_envelope(message.value);
  if (!envelope) {
    // A poison pill: park it at once and let the partition flow on.
    std::function<void()> park = [&] {
      give_up(stage, message, std::nullopt, error_undecodable,
              "not an event envelope with a UUID eventId and an orderId", 1, retry);
    };
    const std::string subject = "an undecodable message";
    try {
      if (co_await while_unavailable(stage, subject, park))
        count_message(stage, "dead_lettered", elapsed());
    } catch (const std::exception& e) {
      log::get("saga")->error("{}: cannot dead-letter {}[{}]@{}: {}", stage, message.topic,
                              message.partition, message.offset, e.what());
      count_message(stage, "failed", elapsed());
    }
    co_return;
  }

  std::string outcome = "skipped";
  const std::string order_id = envelope->order_id;
  step_job job{stage, order_id, &message, retry, &effect};
  std::function<asio::awaitable<void>()> work = [&]() -> asio::awaitable<void> {
    co_await step.batcher->run(job);
  };
  const std::string subject = "order " + order_id;
  for (int failures = 0;;) {
    std::string error, error_class;
    try {
      if (!co_await while_unavailable(stage, subject, work))
        co_return;  // abandoned at shutdown: not committed, delivered again after a restart
      outcome = job.outcome;
      break;
    } catch (const std::exception& e) {
      error = e.what();
      error_class = pg::is_transient(e) ? error_retries_exhausted : error_permanent;
    }
    ++failures;
    if (error_class == error_retries_exhausted) {
      // A serialization failure or deadlock: a conflict with another transaction, worth
      // a few more runs.
      if (auto delay = retry_delay(settings_.conflict_retry, failures, unit_random())) {
        log::get("saga")->warn("{}: order {} runs again in {} ms after: {}", stage, order_id,
                               delay->count(), error);
        asio::steady_timer timer(co_await asio::this_coro::executor, *delay);
        co_await timer.async_wait(asio::use_awaitable);
        continue;
      }
    }
    std::function<void()> park = [&] {
      give_up(stage, message, order_id, error_class, error, failures, retry);
    };
    try {
      if (!co_await while_unavailable(stage, subject, park))
        co_return;
      outcome = "dead_lettered";
    } catch (const std::exception& e) {
      log::get("saga")->error("{}: order {}: cannot dead-letter after '{}': {}", stage, order_id,
                              error, e.what());
      outcome = "failed";
    }
    break;
  }
  count_message(stage, outcome, elapsed());
}

void step_engine::find_awaiting(std::string_view stage, const std::vector<peek_job*>& jobs) {
  std::vector<std::string_view> order_ids;
  std::vector<std::optional<std::int64_t>> retry_ids;
  std::vector<std::optional<int>> attempts;
  for (const auto* job : jobs) {
    order_ids.push_back(job->order_id);
    retry_ids.push_back(job->retry ? std::optional(job->retry->id) : std::nullopt);
    attempts.push_back(job->retry ? std::optional(job->retry->attempts) : std::nullopt);
  }
  pool_.with_connection([&](pqxx::connection& c) {
    pqxx::nontransaction read(c);  // one statement: no BEGIN/COMMIT round trips
    auto rows = read.exec_prepared("saga_awaiting", pg::text_array(order_ids), std::string(stage),
                                   pg::nullable_integer_array(retry_ids),
                                   pg::nullable_integer_array(attempts));
    for (const auto& r : rows) {
      auto& job = *jobs.at(r[18].as<std::size_t>() - 1);
      if (r[17].as<bool>() && awaited_step(definition(), read_saga_state(r, 11)) == stage)
        job.order = read_order_columns(r);
    }
  });
}

std::optional<saga_row> step_engine::lock_saga(pqxx::work& tx, const std::string& order_id) {
  auto locked = lock_sagas(tx, {}, {order_id});
  if (locked.empty())
    return std::nullopt;
  return std::move(locked.begin()->second.row);
}

std::map<std::string, step_engine::locked_saga> step_engine::lock_sagas(
    pqxx::work& tx, std::string_view stage, const std::vector<std::string_view>& order_ids) {
  std::optional<std::string> retried_stage;
  if (!stage.empty())
    retried_stage = std::string(stage);
  std::map<std::string, locked_saga> out;
  auto ids = pg::text_array(order_ids);
  tx.exec_prepared("saga_lock_orders", ids);
  for (const auto& r : tx.exec_prepared("saga_lock", ids, retried_stage)) {
    auto [entry, first_row] = out.try_emplace(r[0].as<std::string>());
    auto& locked = entry->second;
    if (first_row) {
      locked.retry_pending = r[11].as<bool>();
      saga_row row;
      row.order = read_order_columns(r);
      row.order_id = entry->first;
      row.state = read_saga_state(r, 12);
      row.age_seconds = r[18].as<double>();
      row.trace_id = r[19].as<std::string>();
      row.step_age_seconds = r[20].as<double>();
      locked.row = std::move(row);
    }
    if (!r[21].is_null())
      locked.row->order.items.push_back(read_item_columns(r, 21));
  }
  return out;
}

std::string step_engine::transition(transaction_scope& scope, std::string_view caller,
                                    const saga_row& row, const saga_event& event,
                                    step_writes& writes) {
  auto logger = log::get("saga");
  auto result = apply(definition(), row.state, event);
  if (auto* rejection = std::get_if<saga_rejection>(&result)) {
    // Late, duplicated or out-of-order: record the event as seen and change nothing. A saga
    // row that contradicts itself is corrupt data an operator must look at.
    if (rejection->error == saga_error::inconsistent_state)
      logger->error("{}: order {}: {}", caller, row.order_id, describe(*rejection));
    else
      logger->warn("{}: order {}: {}", caller, row.order_id, describe(*rejection));
    return "rejected";
  }
  auto& next = std::get<saga_transition>(result);
  for (const auto& command : next.commands) {
    switch (command.kind) {
      case command_kind::compensate:
      case command_kind::finalize: {
        const auto* step = find_step(command.step);
        const auto& handler = command.kind == command_kind::compensate ? step->spec.compensation
                                                                       : step->spec.finalizer;
        if (handler) {
          engine_step_context context(scope, row, false, 0, nullptr);
          handler(context);
        }
        break;
      }
      case command_kind::compensate_by_operator: {
        // A step this program no longer declares (or no longer undoes) still holds an effect:
        // an operator must undo it. The dead letter names the order and the step.
        logger->error("order {}: {} left an effect this program cannot undo; dead-lettered",
                      row.order_id, command.step);
        kafka::consumed_message undo;
        undo.topic = settings_.order_failed_topic;
        undo.key = row.order_id;
        undo.value = order_json(row.order);
        dead_letters_.park(scope.tx(),
                           {command.step, row.order_id, &undo, "compensation_undeclared",
                            fmt::format("compensate step {} by hand: this program does not "
                                        "declare its compensation",
                                        command.step),
                            1, std::nullopt});
        break;
      }
      case command_kind::publish_succeeded:
      case command_kind::publish_failed:
        break;  // written with the saga, which gives the event its updatedAt
    }
  }
  logger->debug("{}: {} -> {}", caller, row.state.status, next.next.status);
  if (is_ended(next.next) && !is_ended(row.state))
    writes.finals.emplace_back(next.next, row.age_seconds);
  // A transition that only compensates (a late capture refunded) leaves the saga, the order
  // and its history as they are: the order's updatedAt, and so a repeated cancel's answer,
  // stays the same.
  if (next.next != row.state)
    writes.sagas.push_back({&row, std::move(next)});
  return "applied";
}

void step_engine::write_and_commit(transaction_scope& scope, step_writes& writes) {
  auto& tx = scope.tx();
  // A running saga's next event needs no outbox row when it is sent right after the commit:
  // if Kafka never takes it (a crash, an outage), the order waits at the step that event
  // starts, and republish_stalled sends it again from the order's row. An ended saga's event
  // (and every event without the after-commit publisher) is stored: nothing waits for it.
  std::vector<outbox::message> events, unstored;
  auto publish = [&](const saga_row& row, const saga_state& state, const std::string& updated_at,
                     const std::string& topic, const std::string& event_type) {
    const bool stored = !publisher_ || is_ended(state);
    auto& out = stored ? events : unstored;
    auto order = row.order;
    order.status = state.status;
    order.cancel_reason = state.reason;
    order.cancel_detail = state.detail;
    if (!updated_at.empty())
      order.updated_at = updated_at;
    // A row holds a reference the relay renders; the payload is for publishing right after
    // the commit (an event without a row needs only the payload).
    out.push_back({topic,
                   row.order_id,
                   event_type,
                   row.order_id,
                   order_json(order),
                   row.trace_id.empty() ? "" : log::make_traceparent(row.trace_id),
                   {},
                   std::nullopt,
                   stored ? std::optional(order_payload_reference(order)) : std::nullopt});
  };
  std::map<std::string, std::string, std::less<>> updated_at;
  if (!writes.sagas.empty()) {
    std::vector<std::string_view> order_ids, states, details, ended;
    std::vector<std::optional<std::string_view>> reasons;
    std::vector<std::string> step_indexes, owed;
    for (const auto& change : writes.sagas) {
      const auto& next = change.transition.next;
      order_ids.push_back(change.row->order_id);
      states.push_back(next.status);
      reasons.push_back(next.reason.empty() ? std::nullopt
                                            : std::optional<std::string_view>(next.reason));
      details.push_back(next.detail);
      step_indexes.push_back(std::to_string(next.position));
      owed.push_back(join_names(next.owed));
      ended.push_back(is_ended(next) ? "t" : "f");
    }
    for (const auto& r :
         tx.exec_prepared("saga_write", pg::text_array(order_ids), pg::text_array(states),
                          pg::nullable_text_array(reasons), pg::text_array(details),
                          pg::text_array(std::vector<std::string_view>(step_indexes.begin(),
                                                                       step_indexes.end())),
                          pg::text_array(std::vector<std::string_view>(owed.begin(), owed.end())),
                          pg::text_array(ended)))
      updated_at[r[0].as<std::string>()] = r[1].as<std::string>();
  }
  for (const auto& [row, transition] : writes.sagas) {
    auto when = updated_at.find(row->order_id);
    const std::string stamp = when == updated_at.end() ? "" : when->second;
    for (const auto& command : transition.commands) {
      if (command.kind == command_kind::publish_succeeded) {
        const auto& spec = step_named(command.step).spec;
        publish(*row, transition.next, stamp, spec.topic, spec.event_type);
      } else if (command.kind == command_kind::publish_failed) {
        publish(*row, transition.next, stamp, settings_.order_failed_topic,
                order_failed_event_type);
      }
    }
  }
  for (const auto& [row, step] : writes.passed_on)
    publish(*row, row->state, "", step->spec.topic, step->spec.event_type);
  auto stored = outbox::append_all(
      tx, events, publisher_ ? std::optional(publisher_->relay_after()) : std::nullopt);
  scope.before_commit();
  tx.commit();
  if (publisher_) {
    publisher_->publish(events, stored);
    publisher_->publish_unstored(unstored);
  }
  for (const auto& [state, age_seconds] : writes.finals)
    record_final(state, age_seconds);
}

void step_engine::apply_steps(const std::vector<step_job*>& jobs) {
  metrics::global()
      .get_histogram("pipeline_batch_size", "Messages of one stage applied in one transaction.",
                     {{"stage", std::string(jobs.front()->stage)}}, {1, 2, 4, 8, 16, 32, 64, 128})
      .observe(static_cast<double>(jobs.size()));
  pool_.with_connection([&](pqxx::connection& c) {
    try {
      apply_steps_once(c, jobs, false);
    } catch (const order_pipeline::decide_again_under_lock& e) {
      if (jobs.size() > 1)
        throw;  // the batcher runs each step alone
      log::get("saga")->debug("{}: order {}: {}; deciding again under lock", jobs.front()->stage,
                              jobs.front()->order_id, e.what());
      // Cannot happen again: what the step decides on is read under the lock this time.
      apply_steps_once(c, jobs, true);
    }
  });
}

void step_engine::apply_steps_once(pqxx::connection& c, const std::vector<step_job*>& jobs,
                                   bool under_lock) {
  auto logger = log::get("saga");
  std::string_view stage = jobs.front()->stage;
  const auto& step = step_named(stage);
  pqxx::work tx(c);
  std::vector<step_job*> taken;
  std::vector<std::string_view> order_ids;
  for (auto* job : jobs) {
    if (std::find(order_ids.begin(), order_ids.end(), job->order_id) != order_ids.end())
      throw std::logic_error("order " + job->order_id + " twice in one batch");  // run alone
    // A retry runs only while its row is there, and takes it: a second run of the same retry
    // (its lease ran out while the first still ran) changes nothing.
    if (job->retry &&
        tx.exec_prepared("saga_take_retry", job->retry->id, job->retry->attempts).affected_rows() ==
            0) {
      job->outcome = "duplicate";
      continue;
    }
    order_ids.push_back(job->order_id);
    taken.push_back(job);
  }
  auto locked = lock_sagas(tx, stage, order_ids);
  std::vector<std::pair<step_job*, const saga_row*>> steps;
  std::vector<const saga_row*> rows;
  step_writes writes;
  for (auto* job : taken) {
    auto it = locked.find(job->order_id);
    if (it == locked.end() || !it->second.row) {
      logger->warn("{}: no saga for order {}; event dropped", stage, job->order_id);
      job->outcome = "skipped";
      continue;
    }
    const auto& row = *it->second.row;
    if (!is_part_of(row.state, stage)) {
      // The saga started under a release without this step: it keeps its own list, so the
      // event goes on to this step's topic unchanged, for the step after it.
      logger->info("{}: order {} started without this step; passed on", stage, job->order_id);
      writes.passed_on.emplace_back(&row, &step);
      job->outcome = "passed_on";
      continue;
    }
    if (is_redelivery(step, row.state, job->retry == nullptr && it->second.retry_pending)) {
      logger->debug("{}: order {}: already handled", stage, job->order_id);
      job->outcome = "duplicate";
      continue;
    }
    steps.emplace_back(job, &row);
    rows.push_back(&row);
  }
  transaction_scope scope(tx, std::move(rows), under_lock);
  for (auto [job, row] : steps) {
    log::scoped_context logged(row->order_id, row->trace_id);
    step_context context{scope, awaited_step(definition(), row->state) == stage,
                         job->retry ? job->retry->attempts : 0, nullptr};
    auto decision = (*job->effect)(*row, context);
    std::string outcome = "skipped";
    auto event = event_of(tx, step, *job, decision, context.earlier_failures, outcome);
    if (event)
      outcome = transition(scope, stage, *row, *event, writes);
    job->outcome = outcome;
  }
  write_and_commit(scope, writes);
}

std::optional<saga_event> step_engine::event_of(pqxx::work& tx, const declared_step& step,
                                                const step_job& job, const step_decision& decision,
                                                int earlier_failures, std::string& outcome) {
  const auto& name = step.spec.name;
  switch (decision.outcome) {
    case step_decision::kind::proceed:
      return events::step_succeeded{name};
    case step_decision::kind::reject:
      return events::step_rejected{name, decision.reason, decision.detail};
    case step_decision::kind::nothing:
      return std::nullopt;
    case step_decision::kind::wait:
      // Known to be pointless now (an open circuit): wait without using up an attempt.
      schedule_retry(tx, name, job.order_id, *job.message, job.retry, earlier_failures,
                     "unavailable", decision.detail,
                     with_jitter(step.retry, decision.wait, unit_random()));
      outcome = "retry_scheduled";
      return std::nullopt;
    case step_decision::kind::retry_later:
      break;
  }
  const int failures = earlier_failures + 1;
  if (auto delay = retry_delay(step.retry, failures, unit_random())) {
    schedule_retry(tx, name, job.order_id, *job.message, job.retry, failures, "transient",
                   decision.detail, *delay);
    outcome = "retry_scheduled";
    return std::nullopt;
  }
  failed_message failed{
      name,     job.order_id, job.message, error_retries_exhausted, decision.detail,
      failures, std::nullopt};
  if (job.retry)
    failed.first_failure_at = job.retry->first_failure_at;
  dead_letters_.park(tx, failed);
  return events::step_gave_up{
      name, fmt::format("{} failed {} times: {}", name, failures, decision.detail)};
}

void step_engine::give_up(std::string_view stage, const kafka::consumed_message& message,
                          const std::optional<std::string>& order_id,
                          const std::string& error_class, const std::string& error, int attempts,
                          const stage_retry* retry) {
  failed_message failed{std::string(stage), order_id,    &message, error_class, error,
                        attempts,           std::nullopt};
  if (retry)
    failed.first_failure_at = retry->first_failure_at;
  auto park_and_compensate = [&](bool compensate) {
    pool_.with_connection([&](pqxx::connection& c) {
      pqxx::work tx(c);
      transaction_scope scope(tx, {}, false);
      std::optional<saga_row> row;
      step_writes writes;
      dead_letters_.park(tx, failed);
      if (compensate && order_id) {
        if (retry)
          tx.exec_prepared("saga_take_retry", retry->id, retry->attempts);
        row = lock_saga(tx, *order_id);
        if (row) {
          log::scoped_context logged(row->order_id, row->trace_id);
          transition(scope, stage, *row,
                     events::processing_failed{fmt::format("{}: {}", stage, error)}, writes);
        }
      }
      write_and_commit(scope, writes);
    });
  };
  try {
    park_and_compensate(true);
  } catch (const std::exception& e) {
    if (pg::is_unavailable(e))
      throw;
    // The saga itself cannot be written (the same fault, most likely): park the message
    // alone, so it is not lost, and leave the saga to its deadline.
    log::get("saga")->error("{}: order {} not compensated: {}", stage, order_id.value_or("-"),
                            e.what());
    park_and_compensate(false);
  }
}

void step_engine::schedule_retry(pqxx::work& tx, std::string_view stage,
                                 const std::string& order_id,
                                 const kafka::consumed_message& message, const stage_retry* retry,
                                 int attempts, const std::string& error_class,
                                 const std::string& error, milliseconds delay) {
  std::vector<std::pair<std::string, std::string>> headers(message.headers.begin(),
                                                           message.headers.end());
  std::optional<std::string> first_failure;
  if (retry)
    first_failure = retry->first_failure_at;
  tx.exec_prepared("saga_schedule_retry", std::string(stage), order_id, message.topic,
                   message.partition, message.offset, message.key, pg::to_hex(message.value),
                   outbox::headers_json(headers), attempts, error_class, error, first_failure,
                   static_cast<double>(delay.count()) / 1000.0);
  retries_counter(stage).inc();
  log::get("saga")->warn("{}: order {} runs again in {} ms (failed attempts: {}): {}", stage,
                         order_id, delay.count(), attempts, error);
}

std::vector<stage_retry> step_engine::claim_due_retries(int limit,
                                                        const std::vector<std::string>& stages) {
  std::vector<stage_retry> out;
  if (stages.empty())
    return out;
  const std::vector<std::string_view> names(stages.begin(), stages.end());
  pool_.with_connection([&](pqxx::connection& c) {
    pqxx::work tx(c);
    const auto declared_names = definition().step_names();
    const std::vector<std::string_view> declared(declared_names.begin(), declared_names.end());
    for (const auto& r : tx.exec_prepared("saga_claim_due_retries", limit, pg::text_array(names),
                                          pg::text_array(declared))) {
      stage_retry retry;
      retry.id = r[0].as<std::int64_t>();
      retry.stage = r[1].as<std::string>();
      retry.attempts = r[2].as<int>();
      retry.first_failure_at = r[3].as<std::string>();
      retry.message.topic = r[4].as<std::string>();
      retry.message.partition = r[5].as<int>();
      retry.message.offset = r[6].as<std::int64_t>();
      retry.message.key = r[7].as<std::string>();
      retry.message.value = pg::from_hex(r[8].c_str());
      for (auto& [name, value] : decode_headers_json(r[9].c_str()))
        retry.message.headers[name] = std::move(value);
      out.push_back(std::move(retry));
    }
    tx.commit();
  });
  return out;
}

asio::awaitable<void> step_engine::run_retry(const stage_retry& retry,
                                             const std::vector<std::string>& runnable) {
  try {
    if (find_step(retry.stage)) {
      co_await run(step_named(retry.stage), retry.message, &retry);
      co_return;
    }
    // A retry left by a release that declared this step and this one does not: the saga
    // skips the step (saga_machine.hpp), so the retry goes to the step it waits for now.
    auto envelope = decode_event_envelope(retry.message.value);
    std::optional<std::string> awaited;
    bool ended = !envelope;
    std::function<void()> look = [&] {
      if (!envelope)
        return;
      pool_.with_connection([&](pqxx::connection& c) {
        pqxx::nontransaction read(c);
        auto rows = read.exec_prepared("saga_state", envelope->order_id);
        if (rows.empty()) {
          ended = true;
          return;
        }
        const auto state = read_saga_state(rows[0], 0);
        ended = is_ended(state);
        awaited = awaited_step(definition(), state);
      });
    };
    if (!co_await while_unavailable("retry", "a retry of " + retry.stage, look))
      co_return;
    if (awaited && find_step(*awaited)) {
      if (std::find(runnable.begin(), runnable.end(), *awaited) == runnable.end())
        co_return;  // another replica runs that step: the lease runs out and it claims it
      log::get("saga")->info("retry {} of {}, a step this program does not declare, runs as {}",
                             retry.id, retry.stage, *awaited);
      co_await run(step_named(*awaited), retry.message, &retry);
      co_return;
    }
    if (!ended)
      co_return;  // waits for a step no release here declares: its deadline decides
    // The saga has ended (or the message is not an event): nothing is left to run.
    log::get("saga")->warn("retry {} of {} dropped: its saga has ended", retry.id, retry.stage);
    std::function<void()> drop = [&] {
      pool_.with_connection([&](pqxx::connection& c) {
        pqxx::work tx(c);
        tx.exec_prepared("saga_take_retry", retry.id, retry.attempts);
        tx.commit();
      });
    };
    co_await while_unavailable("retry", "a stray retry", drop);
  } catch (const std::exception& e) {
    // Left in the table; its lease runs out and it is tried again.
    log::get("saga")->error("retry {} of {} failed: {}", retry.id, retry.stage, e.what());
  }
}

std::chrono::milliseconds step_engine::longest_deadline() const {
  milliseconds out{0};
  for (const auto& step : steps_)
    out = std::max(out, *step->spec.deadline);
  return out;
}

std::chrono::milliseconds step_engine::shortest_deadline() const {
  auto out = longest_deadline();
  for (const auto& step : steps_)
    out = std::min(out, *step->spec.deadline);
  return out;
}

int step_engine::expire_overdue(int limit) {
  auto seconds = [](milliseconds ms) { return static_cast<double>(ms.count()) / 1000.0; };
  auto deadline_of = [&](const std::string& step) {
    const auto* declared = find_step(step);
    return declared ? *declared->spec.deadline : longest_deadline();
  };
  std::vector<std::string_view> names;
  std::vector<std::string> deadlines;
  std::set<std::string> running_statuses{std::string(placed_status)};
  for (const auto& step : steps_) {
    names.push_back(step->spec.name);
    deadlines.push_back(fmt::format("{}", seconds(*step->spec.deadline)));
    if (!step->spec.status.empty() && step->spec.status != confirmed_status)
      running_statuses.insert(step->spec.status);
  }
  const std::vector<std::string_view> deadline_texts(deadlines.begin(), deadlines.end());
  const std::vector<std::string_view> statuses(running_statuses.begin(), running_statuses.end());
  std::vector<std::string> overdue;
  pool_.with_connection([&](pqxx::connection& c) {
    pqxx::work tx(c);
    for (const auto& r :
         tx.exec_prepared("saga_overdue", pg::text_array(names), pg::text_array(deadline_texts),
                          seconds(longest_deadline()), pg::text_array(statuses), limit,
                          seconds(shortest_deadline())))
      overdue.push_back(r[0].as<std::string>());
  });
  int expired = 0;
  for (const auto& order_id : overdue) {
    pool_.with_connection([&](pqxx::connection& c) {
      pqxx::work tx(c);
      auto row = lock_saga(tx, order_id);
      if (!row)
        return;
      // Checked again under the lock: the step may have completed since the scan.
      auto step = awaited_step(definition(), row->state);
      if (!step || row->step_age_seconds < seconds(deadline_of(*step)))
        return;
      log::scoped_context logged(row->order_id, row->trace_id);
      transaction_scope scope(tx, {}, false);
      step_writes writes;
      if (transition(scope, deadline_caller, *row, events::deadline_expired{}, writes) != "applied")
        return;
      write_and_commit(scope, writes);
      ++expired;
      deadline_counter(*step).inc();
      log::get("saga")->warn("order {} waited {:.1f} s for its {} step: cancelled", order_id,
                             row->step_age_seconds, *step);
    });
  }
  return expired;
}

int step_engine::republish_stalled(int limit) {
  using clock = std::chrono::steady_clock;
  const auto now = clock::now();
  const auto after = settings_.republish_after;
  // Orders looked at within the interval are left out in the query, so that they do not take
  // the places under `limit` of orders not looked at yet.
  std::erase_if(republished_, [&](const auto& entry) { return now - entry.second >= after; });
  std::vector<std::string_view> looked_at;
  looked_at.reserve(republished_.size());
  for (const auto& entry : republished_)
    looked_at.push_back(entry.first);
  std::vector<outbox::message> events;
  std::vector<std::string> steps;
  pool_.with_connection([&](pqxx::connection& c) {
    pqxx::work tx(c);
    const double seconds = std::chrono::duration<double>(after).count();
    for (const auto& r :
         tx.exec_prepared("saga_stalled", seconds, limit, pg::text_array(looked_at))) {
      const auto order_id = r[0].as<std::string>();
      republished_[order_id] = now;
      const auto state = read_saga_state(r, 1);
      // The event the awaited step consumes in this program: its predecessor's, or the
      // placement's. (A saga waiting for a step no release here declares is its deadline's.)
      auto awaited = awaited_step(definition(), state);
      auto at = std::find_if(steps_.begin(), steps_.end(), [&](const auto& step) {
        return awaited && step->spec.name == *awaited;
      });
      if (at == steps_.end())
        continue;
      const bool first = at == steps_.begin();
      order_view order;
      order.order_id = order_id;
      order.status = state.status;
      order.cancel_reason = state.reason;
      order.cancel_detail = state.detail;
      order.updated_at = r[7].as<std::string>();
      const auto trace_id = r[8].as<std::string>();
      events.push_back({first ? settings_.order_placed_topic : (*std::prev(at))->spec.topic,
                        order_id,
                        first ? order_placed_event_type : (*std::prev(at))->spec.event_type,
                        order_id,
                        "",
                        trace_id.empty() ? "" : log::make_traceparent(trace_id),
                        {},
                        std::nullopt,
                        order_payload_reference(order)});
      steps.push_back(*awaited);
    }
    // The relay publishes them at once; the payload is rendered from the order's row.
    outbox::append_all(tx, events);
    tx.commit();
  });
  auto logger = log::get("saga");
  for (std::size_t i = 0; i < events.size(); ++i) {
    republished_counter(steps[i]).inc();
    logger->debug("order {}: the event of its {} step sent again", events[i].key, steps[i]);
  }
  if (!events.empty())
    logger->warn("{} orders waited over {} ms at a step: the events that start it sent again",
                 events.size(), after.count());
  return static_cast<int>(events.size());
}

cancellation step_engine::cancel(const std::string& order_id) {
  using kind = cancellation::kind;
  return pool_.with_connection([&](pqxx::connection& c) -> cancellation {
    pqxx::work tx(c);
    // The lock waits for a stage's transaction on this order to commit, and holds the stage
    // off until this one did: the saga decides on the state that step left.
    auto row = lock_saga(tx, order_id);
    if (!row)
      return {kind::not_found, ""};
    log::scoped_context logged(row->order_id, row->trace_id);
    const auto& state = row->state;
    if (state.status == cancelled_status && state.reason == customer_cancelled_reason) {
      // Cancelled by an earlier request: answer what that one did.
      bool refund = refund_requested_ && refund_requested_(tx, order_id);
      return {refund ? kind::refunding : kind::cancelled, std::string(cancelled_status)};
    }
    if (is_ended(state))
      return {kind::conflict, state.status};
    transaction_scope scope(tx, {}, false);
    step_writes writes;
    if (transition(scope, cancel_caller, *row, events::cancel_requested{}, writes) != "applied")
      return {kind::conflict, state.status};
    bool completes_later = false;
    for (const auto& command : writes.sagas.back().transition.commands)
      if (command.kind == command_kind::compensate)
        completes_later =
            completes_later || step_named(command.step).spec.compensation_completes_later;
    write_and_commit(scope, writes);
    log::get("saga")->info("order {} cancelled at the customer's request in {}{}", order_id,
                           state.status, completes_later ? "; refund requested" : "");
    return {completes_later ? kind::refunding : kind::cancelled, std::string(cancelled_status)};
  });
}

std::int64_t step_engine::pending_retries() {
  return pool_.with_connection([](pqxx::connection& c) {
    pqxx::work tx(c);
    return tx.exec_prepared1("saga_count_retries")[0].as<std::int64_t>();
  });
}

}  // namespace op::saga
