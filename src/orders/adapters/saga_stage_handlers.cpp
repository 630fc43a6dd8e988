#include "orders/adapters/saga_stage_handlers.hpp"

#include <fmt/format.h>

#include <random>
#include <set>

#include "orders/adapters/event_envelope.hpp"
#include "orders/adapters/order_json.hpp"
#include "orders/adapters/pg_order_repository.hpp"
#include "platform/json/json_escape.hpp"
#include "platform/log/logging.hpp"
#include "platform/log/trace_context.hpp"
#include "platform/metrics/registry.hpp"
#include "platform/outbox/outbox.hpp"
#include "platform/pg/array.hpp"
#include "platform/pg/hex.hpp"
#include "platform/pg/pg_errors.hpp"
#include "platform/runtime/offload.hpp"

namespace op::orders {

struct saga_stage_handlers::saga_row {
  std::string order_id;
  saga_state state;
  double age_seconds = 0;       // since the order was placed
  double step_age_seconds = 0;  // since the saga entered its current step
  std::string trace_id;
  order_view order;  // as it was before this step, with its items
};

struct saga_stage_handlers::locked_saga {
  bool claimed = false;  // the event was new (always false without a claim)
  std::optional<saga_row> row;
};

struct saga_stage_handlers::step_writes {
  struct saga_change {
    const saga_row* row;
    saga_transition transition;
  };
  std::vector<saga_change> sagas;
  std::vector<std::pair<std::string_view, stock_change>> stock;  // by order id
  // Orders reaching their final state, counted once the transaction committed.
  std::vector<std::pair<saga_state, double>> finals;
};

// What the steps of one batch read, each kind in one statement for all of its orders, on
// first use.
class saga_stage_handlers::batch_reads {
 public:
  struct product {
    std::int64_t price_cents = 0;
    bool active = false;
    std::int64_t available = 0;  // less what earlier orders of this batch reserved
  };

  batch_reads(pqxx::work& tx, std::vector<const saga_row*> rows, bool lock_products)
      : tx_(tx), rows_(std::move(rows)), locked_(lock_products) {}

  // Whether each customer of the batch's orders is active; an unknown one is absent.
  const std::map<std::string, bool>& customers() {
    if (!customers_) {
      customers_.emplace();
      std::vector<std::string_view> ids;
      for (const auto* row : rows_)
        ids.push_back(row->order.customer_id);
      for (const auto& r : tx_.exec_prepared("saga_customers", pg::text_array(ids)))
        (*customers_)[r[0].as<std::string>()] = r[1].as<bool>();
    }
    return *customers_;
  }

  // The products of the batch's orders; null for an unknown one.
  const product* find_product(const std::string& product_id) {
    if (!products_)
      read_products();
    auto it = products_->find(product_id);
    return it == products_->end() ? nullptr : &it->second;
  }

  bool products_locked() const { return locked_; }

  // Reads the products again, locked in product order: what they show is then certain until
  // the commit.
  void lock_products() {
    if (locked_ && products_)
      return;
    locked_ = true;
    read_products();
  }

  // Takes a reservation off the stock the later orders of the batch see.
  void take(const std::string& product_id, std::int64_t quantity) {
    taken_[product_id] += quantity;
    if (products_)
      if (auto it = products_->find(product_id); it != products_->end())
        it->second.available -= quantity;
  }

 private:
  void read_products() {
    products_.emplace();
    std::vector<std::string_view> ids;
    for (const auto* row : rows_)
      for (const auto& item : row->order.items)
        ids.push_back(item.product_id);
    for (const auto& r : tx_.exec_prepared(locked_ ? "saga_lock_products" : "saga_read_products",
                                           pg::text_array(ids))) {
      auto id = r[0].as<std::string>();
      auto taken = taken_.find(id);
      (*products_)[id] = {r[1].as<std::int64_t>(), r[2].as<bool>(),
                          r[3].as<std::int64_t>() - (taken == taken_.end() ? 0 : taken->second)};
    }
  }

  pqxx::work& tx_;
  const std::vector<const saga_row*> rows_;
  bool locked_;
  std::optional<std::map<std::string, bool>> customers_;
  std::optional<std::map<std::string, product>> products_;
  std::map<std::string, std::int64_t> taken_;
};

namespace {

using std::chrono::milliseconds;

const char* const validate_consumer = "validate";
const char* const reserve_consumer = "reserve";
const char* const pay_consumer = "pay";
const char* const confirm_consumer = "confirm";
const char* const deadline_consumer = "deadline";
const char* const cancel_consumer = "cancel";

std::string event_type_of(topic_kind topic) {
  switch (topic) {
    case topic_kind::order_validated:
      return "OrderValidated";
    case topic_kind::inventory_reserved:
      return "InventoryReserved";
    case topic_kind::payment_processed:
      return "PaymentProcessed";
    case topic_kind::order_confirmed:
      return "OrderConfirmed";
    case topic_kind::order_failed:
      return "OrderFailed";
  }
  return "Unknown";
}

// The reservation found less stock than the plain read before it (another order took it):
// the step must be decided again with the product rows locked.
struct stock_ran_out : std::runtime_error {
  stock_ran_out() : std::runtime_error("not enough stock without a lock; deciding under lock") {}
};

const char* to_string(saga_stage_handlers::stock_change change) {
  switch (change) {
    case saga_stage_handlers::stock_change::reserve:
      return "reserve";
    case saga_stage_handlers::stock_change::release:
      return "release";
    case saga_stage_handlers::stock_change::commit:
      return "commit";
  }
  return "unknown";
}

// Empty when the order may go on; what is wrong otherwise.
std::string validation_problem(const order_view& order, saga_stage_handlers::batch_reads& reads) {
  const auto& customers = reads.customers();
  auto customer = customers.find(order.customer_id);
  if (customer == customers.end())
    return fmt::format("customer {} does not exist", order.customer_id);
  if (!customer->second)
    return fmt::format("customer {} is not active", order.customer_id);
  std::int64_t sum = 0;
  for (std::size_t line = 0; line < order.items.size(); ++line) {
    const auto& item = order.items[line];
    const auto* product = reads.find_product(item.product_id);
    if (!product)
      return fmt::format("product {} does not exist", item.product_id);
    if (!product->active)
      return fmt::format("product {} is not active", item.product_id);
    auto price = item.price.cents();
    if (price != product->price_cents)
      return fmt::format("items[{}].price {} differs from the catalog price {} of {}", line,
                         item.price.to_string(),
                         money::from_cents(product->price_cents).to_string(), item.product_id);
    sum += item.quantity * price;
  }
  if (sum != order.total_amount.cents())
    return fmt::format("totalAmount {} differs from the sum of the items {}",
                       order.total_amount.to_string(), money::from_cents(sum).to_string());
  return {};
}

void count_message(const char* stage, const std::string& outcome, double seconds) {
  auto& registry = metrics::global();
  registry
      .get_counter("pipeline_messages_total", "Messages handled by a saga stage, by outcome.",
                   {{"stage", stage}, {"outcome", outcome}})
      .inc();
  registry
      .get_histogram("pipeline_stage_duration_seconds",
                     "Time a saga stage took for one message, retries and gateway included.",
                     {{"stage", stage}})
      .observe(seconds);
}

void record_final_counters_at_zero() {
  auto& registry = metrics::global();
  registry.get_counter("orders_confirmed_total", "Orders that reached CONFIRMED.");
  registry.get_counter("orders_failed_total", "Orders that ended FAILED.");
  for (auto reason : all_cancel_reasons)
    registry.get_counter("orders_cancelled_total", "Orders that ended CANCELLED, by reason.",
                         {{"reason", std::string(to_string(reason))}});
}

// Counts an order reaching its final state and how long it took from placement.
void record_final(const saga_state& next, double age_seconds) {
  auto& registry = metrics::global();
  switch (next.status) {
    case order_status::confirmed:
      registry.get_counter("orders_confirmed_total", "Orders that reached CONFIRMED.").inc();
      break;
    case order_status::cancelled:
      registry
          .get_counter(
              "orders_cancelled_total", "Orders that ended CANCELLED, by reason.",
              {{"reason",
                std::string(to_string(next.reason.value_or(cancel_reason::validation_failed)))}})
          .inc();
      break;
    default:
      registry.get_counter("orders_failed_total", "Orders that ended FAILED.").inc();
  }
  registry
      .get_histogram("order_end_to_end_seconds",
                     "Time from placement to the final state (CONFIRMED, CANCELLED, FAILED).",
                     {{"status", std::string(to_string(next.status))}})
      .observe(age_seconds);
}

}  // namespace

saga_stage_handlers::saga_stage_handlers(pg::connection_pool& pool, asio::thread_pool& blocking,
                                         payments::payment_gateway& gateway,
                                         const dead_letter_queue& dead_letters,
                                         saga_settings settings)
    : pool_(pool),
      blocking_(blocking),
      gateway_(gateway),
      dead_letters_(dead_letters),
      settings_(std::move(settings)) {
  // Every outcome series exists from the start, at zero, so rates and alerts work before
  // the first such order.
  record_final_counters_at_zero();
  for (const char* stage : {validate_consumer, reserve_consumer, pay_consumer, confirm_consumer})
    batchers_.emplace(
        stage, std::make_unique<runtime::batcher<step_job>>(
                   blocking_, [this](const std::vector<step_job*>& jobs) { apply_steps(jobs); },
                   settings_.batch_size, settings_.parallel_batches));
  auto& registry = metrics::global();
  for (const char* stage : {validate_consumer, reserve_consumer, pay_consumer, confirm_consumer})
    registry.get_counter("pipeline_retries_scheduled_total",
                         "Saga steps scheduled to run again after a transient failure.",
                         {{"stage", stage}});
  for (auto step :
       {saga_step::validation, saga_step::reservation, saga_step::payment, saga_step::confirmation})
    registry.get_counter("saga_deadlines_expired_total",
                         "Sagas compensated because a step passed its deadline.",
                         {{"step", std::string(to_string(step))}});
}

void saga_stage_handlers::prepare_statements(pqxx::connection& c) {
  // Claims the events given ($3: the consumer, null for none), then locks the sagas in order
  // id order and reads them with their orders and items: one row per item. The claims are
  // made before the locks (the one-time filter), as in every transaction that claims, and in
  // event id order, so two transactions claiming the same events cannot deadlock.
  c.prepare("saga_lock",
            "WITH input AS (SELECT * FROM unnest($1::text[], $2::uuid[]) AS t(order_id, event_id)),"
            " claim AS (INSERT INTO processed_events (consumer, event_id)"
            " SELECT $3, event_id FROM input WHERE $3::text IS NOT NULL AND event_id IS NOT NULL"
            " ORDER BY event_id ON CONFLICT DO NOTHING RETURNING event_id),"
            " saga AS (SELECT order_id, state, reason, detail, inventory_held, payment_captured,"
            " extract(epoch FROM clock_timestamp() - step_started_at)::float8 AS step_age"
            " FROM sagas WHERE order_id IN (SELECT order_id FROM input)"
            " AND (SELECT count(*) FROM claim) >= 0 ORDER BY order_id FOR UPDATE)"
            " SELECT " +
                order_select_list +
                ", coalesce(input.event_id IN (SELECT event_id FROM claim), false), saga.state,"
                " saga.reason, saga.detail, saga.inventory_held, saga.payment_captured,"
                " extract(epoch FROM clock_timestamp() - created_at)::float8,"
                " coalesce(trace_id, ''), saga.step_age, i.product_id,"
                " coalesce(i.product_name, ''), i.quantity, i.price_cents"
                " FROM saga JOIN input USING (order_id) JOIN orders USING (order_id)"
                " LEFT JOIN order_items i USING (order_id) ORDER BY order_id, i.line_no");
  c.prepare("saga_pay_due",
            "SELECT s.state = 'INVENTORY_RESERVED' AND NOT EXISTS (SELECT 1 FROM processed_events"
            " WHERE consumer = $3 AND event_id = $2::uuid), o.total_cents, o.payment_method"
            " FROM sagas s JOIN orders o USING (order_id) WHERE s.order_id = $1");
  c.prepare("saga_pay_retry_due",
            "SELECT s.state = 'INVENTORY_RESERVED' AND EXISTS (SELECT 1 FROM stage_retries"
            " WHERE id = $2 AND attempts = $3), o.total_cents, o.payment_method"
            " FROM sagas s JOIN orders o USING (order_id) WHERE s.order_id = $1");
  // The sagas, their orders' status and history in one round trip; answers each order's new
  // updatedAt.
  c.prepare("saga_write",
            "WITH input AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
            " $5::boolean[], $6::boolean[]) AS t(order_id, state, reason, detail, held, captured)),"
            " saga AS (UPDATE sagas s SET step_started_at = CASE WHEN s.state <> i.state"
            " THEN now() ELSE s.step_started_at END, state = i.state, reason = i.reason,"
            " detail = i.detail, inventory_held = i.held, payment_captured = i.captured,"
            " updated_at = now(), version = s.version + 1 FROM input i"
            " WHERE s.order_id = i.order_id),"
            " history AS (INSERT INTO order_events (order_id, seq, status, reason, detail)"
            " SELECT i.order_id, coalesce((SELECT max(seq) FROM order_events e"
            " WHERE e.order_id = i.order_id), 0) + 1, i.state, i.reason, NULLIF(i.detail, '')"
            " FROM input i)"
            " UPDATE orders o SET status = i.state, cancel_reason = i.reason,"
            " cancel_detail = NULLIF(i.detail, ''), updated_at = now() FROM input i"
            " WHERE o.order_id = i.order_id RETURNING o.order_id, " +
                iso_timestamp_sql("o.updated_at"));
  c.prepare("saga_customers",
            "SELECT customer_id, active FROM customers WHERE customer_id = ANY($1::text[])");
  // The catalog and the stock of the products of a batch's orders, plainly or locked.
  const std::string products =
      "SELECT product_id, price_cents, active, available FROM products"
      " WHERE product_id = ANY($1::text[]) ORDER BY product_id";
  c.prepare("saga_read_products", products);
  c.prepare("saga_lock_products", products + " FOR UPDATE");
  // Changes the stock of every product of the orders $1 by the changes $2 (reserve, release,
  // commit) in one statement, and answers whether every product row was changed: a
  // reservation only changes a row that has enough available. It locks the rows first, in
  // product order (the one-time filter on `locked` runs before the update scans anything),
  // so concurrent transactions cannot deadlock.
  c.prepare("saga_stock",
            "WITH wanted AS (SELECT i.product_id,"
            " sum(CASE c.kind WHEN 'reserve' THEN -i.quantity WHEN 'release' THEN i.quantity"
            " ELSE 0 END)::bigint AS to_available,"
            " sum(CASE c.kind WHEN 'reserve' THEN i.quantity ELSE -i.quantity END)::bigint"
            " AS to_reserved,"
            " sum(CASE c.kind WHEN 'commit' THEN i.quantity ELSE 0 END)::bigint AS to_sold"
            " FROM unnest($1::text[], $2::text[]) AS c(order_id, kind)"
            " JOIN order_items i USING (order_id) GROUP BY i.product_id),"
            " locked AS (SELECT product_id FROM products WHERE product_id IN"
            " (SELECT product_id FROM wanted) ORDER BY product_id FOR UPDATE),"
            " changed AS (UPDATE products p SET available = p.available + w.to_available,"
            " reserved = p.reserved + w.to_reserved, sold = p.sold + w.to_sold,"
            " updated_at = now() FROM wanted w WHERE p.product_id = w.product_id"
            " AND p.available + w.to_available >= 0 AND (SELECT count(*) FROM locked) >= 0"
            " RETURNING 1)"
            " SELECT (SELECT count(*) FROM changed) = (SELECT count(*) FROM locked)");
  // A capture that arrives after a deadline or a cancel already asked for a refund fills in
  // the amount, and makes a refund that waits to look again for a late charge due now.
  c.prepare("saga_record_payment",
            "INSERT INTO payments (order_id, charge_id, amount_cents) VALUES ($1, $2, $3)"
            " ON CONFLICT (order_id) DO UPDATE SET charge_id = EXCLUDED.charge_id,"
            " amount_cents = EXCLUDED.amount_cents, next_refund_at = now()"
            " WHERE payments.charge_id = ''");
  c.prepare("saga_refund_requested",
            "SELECT 1 FROM payments WHERE order_id = $1 AND refund_state IS NOT NULL");
  // Also after an earlier refund that found nothing to refund: a capture may have landed since.
  c.prepare("saga_request_refund",
            "INSERT INTO payments (order_id, charge_id, amount_cents, refund_state)"
            " VALUES ($1, '', 0, 'PENDING') ON CONFLICT (order_id) DO UPDATE"
            " SET refund_state = 'PENDING' WHERE payments.refund_state IS NULL"
            " OR (payments.refund_state = 'REFUNDED'"
            " AND payments.refunded_cents < payments.amount_cents)");
  c.prepare("saga_pending_refunds",
            "SELECT order_id, charge_id = '', refund_checks FROM payments"
            " WHERE refund_state = 'PENDING' AND next_refund_at <= now() ORDER BY order_id"
            " LIMIT 100");
  c.prepare("saga_refund_recheck",
            "UPDATE payments SET refund_checks = refund_checks + 1,"
            " next_refund_at = now() + make_interval(secs => $2)"
            " WHERE order_id = $1 AND refund_state = 'PENDING' AND charge_id = ''");
  c.prepare("saga_refund_done",
            "UPDATE payments SET refund_state = 'REFUNDED', refunded_cents = $2,"
            " refunded_at = now() WHERE order_id = $1 AND refund_state = 'PENDING'");
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
  // Only retries of the stages $2 this replica runs: a split deployment's pay retries wait
  // for a replica with the payment gateway.
  c.prepare("saga_claim_due_retries",
            "UPDATE stage_retries SET due_at = now() + interval '60 seconds' WHERE id IN"
            " (SELECT id FROM stage_retries WHERE due_at <= now() AND stage = ANY($2::text[])"
            " ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING id, stage, attempts,"
            " to_char(first_failure_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
            " topic, partition, \"offset\", message_key, encode(payload, 'hex'), headers::text");
  c.prepare("saga_take_retry", "DELETE FROM stage_retries WHERE id = $1 AND attempts = $2");
  c.prepare("saga_count_retries", "SELECT count(*) FROM stage_retries");
  c.prepare("saga_overdue",
            "SELECT order_id FROM sagas WHERE (state = 'PLACED' AND step_started_at <"
            " now() - make_interval(secs => $1)) OR (state = 'VALIDATED' AND step_started_at <"
            " now() - make_interval(secs => $2)) OR (state = 'INVENTORY_RESERVED' AND"
            " step_started_at < now() - make_interval(secs => $3)) OR (state ="
            " 'PAYMENT_PROCESSED' AND step_started_at < now() - make_interval(secs => $4))"
            " ORDER BY step_started_at LIMIT $5");
}

double saga_stage_handlers::unit_random() {
  thread_local std::mt19937_64 engine{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
}

asio::awaitable<bool> saga_stage_handlers::while_unavailable(
    const char* consumer, const std::string& subject,
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
    logger->warn("{}: {} waiting {} ms for the database: {}", consumer, subject, delay.count(),
                 reason);
    asio::steady_timer timer(co_await asio::this_coro::executor, delay);
    co_await timer.async_wait(asio::use_awaitable);
  }
}

asio::awaitable<bool> saga_stage_handlers::while_unavailable(const char* consumer,
                                                             const std::string& subject,
                                                             std::function<void()>& work) {
  std::function<asio::awaitable<void>()> attempt = [&]() -> asio::awaitable<void> {
    auto run_once = [&work] {
      work();
      return true;
    };
    co_await runtime::offload(blocking_, run_once);
  };
  co_return co_await while_unavailable(consumer, subject, attempt);
}

runtime::batcher<saga_stage_handlers::step_job>& saga_stage_handlers::batcher_for(
    const char* consumer) {
  auto it = batchers_.find(std::string_view(consumer));
  if (it == batchers_.end())
    throw std::logic_error(fmt::format("no batcher for stage {}", consumer));
  return *it->second;
}

asio::awaitable<void> saga_stage_handlers::run_step(const char* consumer,
                                                    const kafka::consumed_message& message,
                                                    const step_effect& effect,
                                                    const stage_retry* retry) {
  auto started = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  };
  auto envelope = decode_event_envelope(message.value);
  if (!envelope) {
    // A poison pill: park it at once and let the partition flow on.
    std::function<void()> park = [&] {
      give_up(consumer, message, std::nullopt, error_undecodable,
              "not an event envelope with a UUID eventId and an orderId", 1, retry);
    };
    const std::string subject = "an undecodable message";
    try {
      if (co_await while_unavailable(consumer, subject, park))
        count_message(consumer, "dead_lettered", elapsed());
    } catch (const std::exception& e) {
      log::get("saga")->error("{}: cannot dead-letter {}[{}]@{}: {}", consumer, message.topic,
                              message.partition, message.offset, e.what());
      count_message(consumer, "failed", elapsed());
    }
    co_return;
  }

  std::string outcome = "skipped";
  const std::string order_id = envelope->order_id;
  step_job job{consumer, order_id, envelope->event_id, retry, &effect};
  std::function<asio::awaitable<void>()> work = [&]() -> asio::awaitable<void> {
    co_await batcher_for(consumer).run(job);
  };
  const std::string subject = "order " + order_id;
  for (int failures = 0;;) {
    std::string error, error_class;
    try {
      if (!co_await while_unavailable(consumer, subject, work))
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
      if (auto delay = retry_delay(settings_.retry, failures, unit_random())) {
        log::get("saga")->warn("{}: order {} runs again in {} ms after: {}", consumer, order_id,
                               delay->count(), error);
        asio::steady_timer timer(co_await asio::this_coro::executor, *delay);
        co_await timer.async_wait(asio::use_awaitable);
        continue;
      }
    }
    std::function<void()> park = [&] {
      give_up(consumer, message, order_id, error_class, error, failures, retry);
    };
    try {
      if (!co_await while_unavailable(consumer, subject, park))
        co_return;
      outcome = "dead_lettered";
    } catch (const std::exception& e) {
      log::get("saga")->error("{}: order {}: cannot dead-letter after '{}': {}", consumer, order_id,
                              error, e.what());
      outcome = "failed";
    }
    break;
  }
  count_message(consumer, outcome, elapsed());
}

std::optional<saga_stage_handlers::saga_row> saga_stage_handlers::lock_saga(
    pqxx::work& tx, const std::string& order_id) {
  auto locked = claim_and_lock_sagas(tx, nullptr, {{order_id, std::nullopt}});
  if (locked.empty())
    return std::nullopt;
  return std::move(locked.begin()->second.row);
}

std::map<std::string, saga_stage_handlers::locked_saga> saga_stage_handlers::claim_and_lock_sagas(
    pqxx::work& tx, const char* consumer, const std::vector<lock_request>& requests) {
  std::vector<std::string_view> order_ids;
  std::vector<std::optional<std::string_view>> event_ids;
  for (const auto& request : requests) {
    order_ids.push_back(request.order_id);
    event_ids.push_back(request.event_id);
  }
  std::optional<std::string> claimer;
  if (consumer)
    claimer = consumer;
  std::map<std::string, locked_saga> out;
  for (const auto& r : tx.exec_prepared("saga_lock", pg::text_array(order_ids),
                                        pg::nullable_text_array(event_ids), claimer)) {
    auto [entry, first_row] = out.try_emplace(r[0].as<std::string>());
    auto& locked = entry->second;
    if (first_row) {
      locked.claimed = r[11].as<bool>();
      saga_row row;
      row.order = read_order_columns(r);
      row.order_id = entry->first;
      auto status = parse_order_status(r[12].as<std::string>());
      if (!status)
        throw std::runtime_error("unknown saga state " + r[12].as<std::string>());
      row.state.status = *status;
      if (!r[13].is_null())
        row.state.reason = parse_cancel_reason(r[13].as<std::string>());
      row.state.detail = r[14].as<std::string>();
      row.state.inventory_held = r[15].as<bool>();
      row.state.payment_captured = r[16].as<bool>();
      row.age_seconds = r[17].as<double>();
      row.trace_id = r[18].as<std::string>();
      row.step_age_seconds = r[19].as<double>();
      locked.row = std::move(row);
    }
    if (!r[20].is_null())
      locked.row->order.items.push_back(read_item_columns(r, 20));
  }
  return out;
}

std::string saga_stage_handlers::transition(pqxx::work& tx, const char* consumer,
                                            const saga_row& row, const saga_event& event,
                                            step_writes& writes) {
  auto logger = log::get("saga");
  auto result = order_saga::apply(row.state, event);
  if (auto* rejection = std::get_if<saga_rejection>(&result)) {
    // Late, duplicated or out-of-order: record the event as seen and change nothing. A saga
    // row that contradicts itself is corrupt data an operator must look at.
    if (rejection->error == saga_error::inconsistent_state)
      logger->error("{}: order {}: {}", consumer, row.order_id, describe(*rejection));
    else
      logger->warn("{}: order {}: {}", consumer, row.order_id, describe(*rejection));
    return "rejected";
  }
  auto& next = std::get<saga_transition>(result);
  for (const auto& command : next.commands) {
    switch (command.kind) {
      case command_kind::release_inventory:
        writes.stock.emplace_back(row.order_id, stock_change::release);
        break;
      case command_kind::commit_inventory:
        writes.stock.emplace_back(row.order_id, stock_change::commit);
        break;
      case command_kind::refund_payment:
        tx.exec_prepared("saga_request_refund", row.order_id);
        break;
      case command_kind::publish:
        break;  // written with the saga, which gives the event its updatedAt
    }
  }
  logger->debug("{}: {} -> {}", consumer, to_string(row.state.status), to_string(next.next.status));
  if (is_terminal(next.next.status) && next.next.status != row.state.status)
    writes.finals.emplace_back(next.next, row.age_seconds);
  // A transition that only compensates (a late capture refunded) leaves the saga, the order
  // and its history as they are: the order's updatedAt, and so a repeated cancel's answer,
  // stays the same.
  if (next.next != row.state)
    writes.sagas.push_back({&row, std::move(next)});
  return "applied";
}

void saga_stage_handlers::write_and_commit(pqxx::work& tx, step_writes& writes) {
  if (!writes.sagas.empty()) {
    std::vector<std::string_view> order_ids, states, details, held, captured;
    std::vector<std::optional<std::string_view>> reasons;
    for (const auto& [row, transition] : writes.sagas) {
      const auto& next = transition.next;
      order_ids.push_back(row->order_id);
      states.push_back(to_string(next.status));
      reasons.push_back(next.reason ? std::optional<std::string_view>(to_string(*next.reason))
                                    : std::nullopt);
      details.push_back(next.detail);
      held.push_back(next.inventory_held ? "t" : "f");
      captured.push_back(next.payment_captured ? "t" : "f");
    }
    std::map<std::string, std::string, std::less<>> updated_at;
    for (const auto& r :
         tx.exec_prepared("saga_write", pg::text_array(order_ids), pg::text_array(states),
                          pg::nullable_text_array(reasons), pg::text_array(details),
                          pg::text_array(held), pg::text_array(captured)))
      updated_at[r[0].as<std::string>()] = r[1].as<std::string>();

    std::vector<outbox::message> events;
    for (const auto& [row, transition] : writes.sagas) {
      // The order as the events publish it, after this step.
      auto order = row->order;
      order.status = to_string(transition.next.status);
      order.cancel_reason =
          transition.next.reason ? std::string(to_string(*transition.next.reason)) : "";
      order.cancel_detail = transition.next.detail;
      if (auto it = updated_at.find(row->order_id); it != updated_at.end())
        order.updated_at = it->second;
      for (const auto& command : transition.commands)
        if (command.kind == command_kind::publish)
          events.push_back({topic_name(*command.topic), row->order_id,
                            event_type_of(*command.topic), row->order_id, order_json(order),
                            row->trace_id.empty() ? "" : log::make_traceparent(row->trace_id)});
    }
    outbox::append_all(tx, events);
  }
  if (!writes.stock.empty()) {
    std::vector<std::string_view> order_ids, kinds;
    for (const auto& [order_id, change] : writes.stock) {
      order_ids.push_back(order_id);
      kinds.push_back(to_string(change));
    }
    if (!tx.exec_prepared1("saga_stock", pg::text_array(order_ids), pg::text_array(kinds))[0]
             .as<bool>())
      throw stock_ran_out();
  }
  tx.commit();
  for (const auto& [state, age_seconds] : writes.finals)
    record_final(state, age_seconds);
}

void saga_stage_handlers::apply_steps(const std::vector<step_job*>& jobs) {
  metrics::global()
      .get_histogram("pipeline_batch_size", "Messages of one stage applied in one transaction.",
                     {{"stage", jobs.front()->consumer}}, {1, 2, 4, 8, 16, 32, 64, 128})
      .observe(static_cast<double>(jobs.size()));
  pool_.with_connection([&](pqxx::connection& c) {
    try {
      apply_steps_once(c, jobs, false);
    } catch (const stock_ran_out&) {
      if (jobs.size() > 1)
        throw;  // the batcher runs each step alone
      log::get("saga")->debug("{}: order {}: stock changed meanwhile; deciding again under lock",
                              jobs.front()->consumer, jobs.front()->order_id);
      // Cannot run out again: the rows are locked when the stock is read.
      apply_steps_once(c, jobs, true);
    }
  });
}

void saga_stage_handlers::apply_steps_once(pqxx::connection& c, const std::vector<step_job*>& jobs,
                                           bool lock_stock_first) {
  auto logger = log::get("saga");
  const char* consumer = jobs.front()->consumer;
  pqxx::work tx(c);
  std::vector<step_job*> taken;
  std::vector<lock_request> requests;
  std::set<std::string_view> orders;
  for (auto* job : jobs) {
    if (!orders.insert(job->order_id).second)
      throw std::logic_error("order " + job->order_id + " twice in one batch");  // run alone
    if (job->retry) {
      // The event id was claimed when the retry was scheduled; the retry's row is the claim.
      if (tx.exec_prepared("saga_take_retry", job->retry->id, job->retry->attempts)
              .affected_rows() == 0) {
        job->outcome = "duplicate";
        continue;
      }
      requests.push_back({job->order_id, std::nullopt});
    } else {
      requests.push_back({job->order_id, job->event_id});
    }
    taken.push_back(job);
  }
  auto locked = claim_and_lock_sagas(tx, consumer, requests);
  std::vector<std::pair<step_job*, const saga_row*>> steps;
  std::vector<const saga_row*> rows;
  for (auto* job : taken) {
    auto it = locked.find(job->order_id);
    if (it == locked.end() || !it->second.row) {
      logger->warn("{}: no saga for order {}; event dropped", consumer, job->order_id);
      job->outcome = "skipped";
      continue;
    }
    if (!job->retry && !it->second.claimed) {
      logger->debug("{}: order {}: already handled", consumer, job->order_id);
      job->outcome = "duplicate";
      continue;
    }
    steps.emplace_back(job, &*it->second.row);
    rows.push_back(&*it->second.row);
  }
  batch_reads reads(tx, rows, lock_stock_first);
  step_writes writes;
  for (auto [job, row] : steps) {
    log::scoped_context logged(row->order_id, row->trace_id);
    step_context step;
    step.lock_stock_first = lock_stock_first;
    step.reads = &reads;
    auto event = (*job->effect)(tx, *row, step);
    if (event)
      step.outcome = transition(tx, consumer, *row, *event, writes);
    for (auto change : step.stock)
      writes.stock.emplace_back(row->order_id, change);
    job->outcome = step.outcome;
  }
  write_and_commit(tx, writes);
}

void saga_stage_handlers::give_up(const char* consumer, const kafka::consumed_message& message,
                                  const std::optional<std::string>& order_id,
                                  const std::string& error_class, const std::string& error,
                                  int attempts, const stage_retry* retry) {
  failed_message failed{consumer, order_id, &message, error_class, error, attempts, std::nullopt};
  if (retry)
    failed.first_failure_at = retry->first_failure_at;
  auto park_and_compensate = [&](bool compensate) {
    pool_.with_connection([&](pqxx::connection& c) {
      pqxx::work tx(c);
      std::optional<saga_row> row;
      step_writes writes;
      dead_letters_.park(tx, failed);
      if (compensate && order_id) {
        if (retry)
          tx.exec_prepared("saga_take_retry", retry->id, retry->attempts);
        row = lock_saga(tx, *order_id);
        if (row) {
          log::scoped_context logged(row->order_id, row->trace_id);
          transition(tx, consumer, *row,
                     events::processing_failed{fmt::format("{}: {}", consumer, error)}, writes);
        }
      }
      write_and_commit(tx, writes);
    });
  };
  try {
    park_and_compensate(true);
  } catch (const std::exception& e) {
    if (pg::is_unavailable(e))
      throw;
    // The saga itself cannot be written (the same fault, most likely): park the message
    // alone, so it is not lost, and leave the saga to its deadline.
    log::get("saga")->error("{}: order {} not compensated: {}", consumer, order_id.value_or("-"),
                            e.what());
    park_and_compensate(false);
  }
}

void saga_stage_handlers::schedule_retry(pqxx::work& tx, const char* consumer,
                                         const std::string& order_id,
                                         const kafka::consumed_message& message,
                                         const stage_retry* retry, int attempts,
                                         const std::string& error_class, const std::string& error,
                                         milliseconds delay) {
  std::vector<std::pair<std::string, std::string>> headers(message.headers.begin(),
                                                           message.headers.end());
  std::optional<std::string> first_failure;
  if (retry)
    first_failure = retry->first_failure_at;
  tx.exec_prepared("saga_schedule_retry", consumer, order_id, message.topic, message.partition,
                   message.offset, message.key, pg::to_hex(message.value),
                   outbox::headers_json(headers), attempts, error_class, error, first_failure,
                   static_cast<double>(delay.count()) / 1000.0);
  metrics::global()
      .get_counter("pipeline_retries_scheduled_total",
                   "Saga steps scheduled to run again after a transient failure.",
                   {{"stage", consumer}})
      .inc();
  log::get("saga")->warn("{}: order {} runs again in {} ms (failed attempts: {}): {}", consumer,
                         order_id, delay.count(), attempts, error);
}

std::vector<stage_retry> saga_stage_handlers::claim_due_retries(
    int limit, const std::vector<std::string>& stages) {
  std::vector<stage_retry> out;
  if (stages.empty())
    return out;
  const std::vector<std::string_view> names(stages.begin(), stages.end());
  pool_.with_connection([&](pqxx::connection& c) {
    pqxx::work tx(c);
    for (const auto& r : tx.exec_prepared("saga_claim_due_retries", limit, pg::text_array(names))) {
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

asio::awaitable<void> saga_stage_handlers::run_retry(const stage_retry& retry) {
  try {
    if (retry.stage == pay_consumer) {
      co_await pay_step(retry.message, &retry);
    } else {
      // Only the payment step schedules retries today; anything else is a stray row.
      log::get("saga")->error("retry {} of unknown stage {} dropped", retry.id, retry.stage);
      std::function<void()> drop = [&] {
        pool_.with_connection([&](pqxx::connection& c) {
          pqxx::work tx(c);
          tx.exec_prepared("saga_take_retry", retry.id, retry.attempts);
          tx.commit();
        });
      };
      const std::string subject = "a stray retry";
      co_await while_unavailable("retry", subject, drop);
    }
  } catch (const std::exception& e) {
    // Left in the table; its lease runs out and it is tried again.
    log::get("saga")->error("retry {} of {} failed: {}", retry.id, retry.stage, e.what());
  }
}

int saga_stage_handlers::expire_overdue(int limit) {
  const auto& d = settings_.deadlines;
  auto seconds = [](milliseconds ms) { return static_cast<double>(ms.count()) / 1000.0; };
  auto deadline_of = [&](order_status status) -> std::optional<milliseconds> {
    auto step = awaited_step(status);
    if (!step)
      return std::nullopt;
    switch (*step) {
      case saga_step::validation:
        return d.validation;
      case saga_step::reservation:
        return d.reservation;
      case saga_step::payment:
        return d.payment;
      case saga_step::confirmation:
        return d.confirmation;
    }
    return std::nullopt;
  };
  std::vector<std::string> overdue;
  pool_.with_connection([&](pqxx::connection& c) {
    pqxx::work tx(c);
    for (const auto& r :
         tx.exec_prepared("saga_overdue", seconds(d.validation), seconds(d.reservation),
                          seconds(d.payment), seconds(d.confirmation), limit))
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
      auto deadline = deadline_of(row->state.status);
      if (!deadline || row->step_age_seconds < seconds(*deadline))
        return;
      log::scoped_context logged(row->order_id, row->trace_id);
      auto step = *awaited_step(row->state.status);
      step_writes writes;
      if (transition(tx, deadline_consumer, *row, events::deadline_expired{}, writes) != "applied")
        return;
      write_and_commit(tx, writes);
      ++expired;
      metrics::global()
          .get_counter("saga_deadlines_expired_total",
                       "Sagas compensated because a step passed its deadline.",
                       {{"step", std::string(to_string(step))}})
          .inc();
      log::get("saga")->warn("order {} waited {:.1f} s for its {} step: cancelled", order_id,
                             row->step_age_seconds, to_string(step));
    });
  }
  return expired;
}

cancellation saga_stage_handlers::cancel(const std::string& order_id) {
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
    if (state.status == order_status::cancelled &&
        state.reason == cancel_reason::customer_cancelled) {
      // Cancelled by an earlier request: answer what that one did.
      bool refund = !tx.exec_prepared("saga_refund_requested", order_id).empty();
      return {refund ? kind::refunding : kind::cancelled, "CANCELLED"};
    }
    if (is_terminal(state.status))
      return {kind::conflict, std::string(to_string(state.status))};
    step_writes writes;
    if (transition(tx, cancel_consumer, *row, events::cancel_requested{}, writes) != "applied")
      return {kind::conflict, std::string(to_string(state.status))};
    bool refund = false;
    for (const auto& command : writes.sagas.back().transition.commands)
      refund = refund || command.kind == command_kind::refund_payment;
    write_and_commit(tx, writes);
    log::get("saga")->info("order {} cancelled at the customer's request in {}{}", order_id,
                           to_string(state.status), refund ? "; refund requested" : "");
    return {refund ? kind::refunding : kind::cancelled, "CANCELLED"};
  });
}

std::int64_t saga_stage_handlers::pending_retries() {
  return pool_.with_connection([](pqxx::connection& c) {
    pqxx::work tx(c);
    return tx.exec_prepared1("saga_count_retries")[0].as<std::int64_t>();
  });
}

const std::string& saga_stage_handlers::topic_name(topic_kind topic) const {
  switch (topic) {
    case topic_kind::order_validated:
      return settings_.topics.order_validated;
    case topic_kind::inventory_reserved:
      return settings_.topics.inventory_reserved;
    case topic_kind::payment_processed:
      return settings_.topics.payment_processed;
    case topic_kind::order_confirmed:
      return settings_.topics.order_confirmed;
    case topic_kind::order_failed:
      break;
  }
  return settings_.topics.order_failed;
}

asio::awaitable<void> saga_stage_handlers::validate(const kafka::consumed_message& message) {
  const step_effect effect = [](pqxx::work&, const saga_row& row,
                                step_context& step) -> std::optional<saga_event> {
    if (row.state.status != order_status::placed)
      return events::validation_passed{};  // the saga refuses it, logged
    auto problem = validation_problem(row.order, *step.reads);
    if (problem.empty())
      return events::validation_passed{};
    return events::validation_failed{problem};
  };
  co_await run_step(validate_consumer, message, effect, nullptr);
}

asio::awaitable<void> saga_stage_handlers::reserve(const kafka::consumed_message& message) {
  const step_effect effect = [](pqxx::work&, const saga_row& row,
                                step_context& step) -> std::optional<saga_event> {
    if (row.state.status != order_status::validated)
      return events::inventory_reserved{};
    // All items or none. Usually a plain read shows enough stock and the reservation is
    // taken at the commit (step_context). Otherwise the products are read again locked (in
    // product order, so concurrent orders cannot deadlock) and out of stock is decided under
    // the lock.
    std::map<std::string, std::int64_t> wanted;
    for (const auto& item : row.order.items)
      wanted[item.product_id] += item.quantity;
    auto& reads = *step.reads;
    auto shortage = [&]() -> std::optional<std::string> {
      for (const auto& [product_id, quantity] : wanted) {
        const auto* product = reads.find_product(product_id);
        auto available = product ? product->available : 0;
        if (available < quantity)
          return fmt::format("product {}: {} wanted, {} available", product_id, quantity,
                             available);
      }
      return std::nullopt;
    };
    auto missing = shortage();
    if (missing && !reads.products_locked()) {
      reads.lock_products();
      missing = shortage();
    }
    if (missing)
      return events::out_of_stock{*missing};
    for (const auto& [product_id, quantity] : wanted)
      reads.take(product_id, quantity);
    step.stock.push_back(stock_change::reserve);
    return events::inventory_reserved{};
  };
  co_await run_step(reserve_consumer, message, effect, nullptr);
}

asio::awaitable<void> saga_stage_handlers::pay(const kafka::consumed_message& message) {
  co_await pay_step(message, nullptr);
}

asio::awaitable<void> saga_stage_handlers::pay_step(const kafka::consumed_message& message,
                                                    const stage_retry* retry) {
  auto envelope = decode_event_envelope(message.value);
  if (!envelope) {
    const step_effect nothing;
    co_await run_step(pay_consumer, message, nothing, retry);
    co_return;
  }
  // Charge only an order that waits for its payment and whose event (or retry) is new; a
  // duplicate that slips through is still charged once: the gateway call is idempotent by
  // order id.
  bool due = false;
  payments::charge_request request;
  request.order_id = envelope->order_id;
  std::function<void()> peek = [&] {
    pool_.with_connection([&](pqxx::connection& c) {
      pqxx::nontransaction read(c);  // one statement: no BEGIN/COMMIT round trips
      auto rows = retry ? read.exec_prepared("saga_pay_retry_due", envelope->order_id, retry->id,
                                             retry->attempts)
                        : read.exec_prepared("saga_pay_due", envelope->order_id, envelope->event_id,
                                             pay_consumer);
      if (rows.empty() || !rows[0][0].as<bool>())
        return;
      due = true;
      request.amount_cents = rows[0][1].as<std::int64_t>();
      request.payment_method = rows[0][2].as<std::string>();
    });
  };
  const std::string subject = "order " + envelope->order_id;
  try {
    if (!co_await while_unavailable(pay_consumer, subject, peek))
      co_return;
  } catch (const std::exception& e) {
    log::get("saga")->error("pay: order {}: {}", envelope->order_id, e.what());
  }

  std::optional<payments::charge_result> charged;
  if (due)
    charged = co_await gateway_.charge(request);

  const int earlier_failures = retry ? retry->attempts : 0;
  const step_effect effect = [&](pqxx::work& tx, const saga_row& row,
                                 step_context& step) -> std::optional<saga_event> {
    if (!charged)
      return std::nullopt;
    switch (charged->outcome) {
      case payments::gateway_outcome::approved:
        tx.exec_prepared("saga_record_payment", row.order_id, charged->charge_id,
                         row.order.total_amount.cents());
        return events::payment_captured{charged->charge_id};
      case payments::gateway_outcome::declined:
        return events::payment_declined{
            charged->decline_code.empty()
                ? charged->message
                : fmt::format("{}: {}", charged->decline_code, charged->message)};
      case payments::gateway_outcome::unavailable:
        // The gateway is known to be down: wait for it without using up an attempt.
        schedule_retry(tx, pay_consumer, row.order_id, message, retry, earlier_failures,
                       "gateway_unavailable", charged->message,
                       with_jitter(settings_.retry, charged->retry_after, unit_random()));
        step.outcome = "retry_scheduled";
        return std::nullopt;
      case payments::gateway_outcome::transient_failure:
        break;
    }
    const int failures = earlier_failures + 1;
    if (auto delay = retry_delay(settings_.retry, failures, unit_random())) {
      schedule_retry(tx, pay_consumer, row.order_id, message, retry, failures, "transient",
                     charged->message, *delay);
      step.outcome = "retry_scheduled";
      return std::nullopt;
    }
    failed_message failed{pay_consumer,     row.order_id, &message,    error_retries_exhausted,
                          charged->message, failures,     std::nullopt};
    if (retry)
      failed.first_failure_at = retry->first_failure_at;
    dead_letters_.park(tx, failed);
    return events::payment_failed{
        fmt::format("payment gateway failed {} times: {}", failures, charged->message)};
  };
  co_await run_step(pay_consumer, message, effect, retry);
}

asio::awaitable<void> saga_stage_handlers::confirm(const kafka::consumed_message& message) {
  const step_effect effect = [](pqxx::work&, const saga_row&,
                                step_context&) -> std::optional<saga_event> {
    return events::order_confirmed{};
  };
  co_await run_step(confirm_consumer, message, effect, nullptr);
}

void saga_stage_handlers::start_refunds(asio::io_context& ioc) {
  refunds_ = std::thread([this, &ioc] {
    auto logger = log::get("payments");
    while (!refunds_stopping_) {
      auto pause = milliseconds(500);
      try {
        struct pending_refund {
          std::string order_id;
          bool capture_unknown;  // no capture recorded: a timed-out charge may still land
          int checks;
        };
        std::vector<pending_refund> pending;
        pool_.with_connection([&](pqxx::connection& c) {
          pqxx::work tx(c);
          for (const auto& r : tx.exec_prepared("saga_pending_refunds"))
            pending.push_back({r[0].as<std::string>(), r[1].as<bool>(), r[2].as<int>()});
        });
        for (const auto& [order_id, capture_unknown, checks] : pending) {
          if (refunds_stopping_)
            break;
          auto result = asio::co_spawn(ioc, gateway_.refund(order_id), asio::use_future).get();
          if (result.outcome == payments::gateway_outcome::unavailable) {
            // The gateway's circuit is open: try the whole batch again once it may be back.
            pause = std::max(pause, result.retry_after);
            logger->info("refunds wait {} ms for the payment gateway", pause.count());
            break;
          }
          if (result.outcome == payments::gateway_outcome::transient_failure) {
            logger->warn("refund of order {} failed, will retry: {}", order_id, result.message);
            continue;
          }
          if (result.refunded_cents == 0 && capture_unknown &&
              checks < settings_.late_charge_checks) {
            // Nothing captured yet. A charge the gateway still holds (our call timed out)
            // would land later: look again after twice the call timeout, then doubling.
            auto wait = settings_.late_charge_wait * (2 << checks);
            pool_.with_connection([&](pqxx::connection& c) {
              pqxx::work tx(c);
              tx.exec_prepared("saga_refund_recheck", order_id,
                               static_cast<double>(wait.count()) / 1000.0);
              tx.commit();
            });
            logger->debug("order {}: nothing to refund yet; checking again in {} ms", order_id,
                          wait.count());
            continue;
          }
          pool_.with_connection([&](pqxx::connection& c) {
            pqxx::work tx(c);
            tx.exec_prepared("saga_refund_done", order_id, result.refunded_cents);
            tx.commit();
          });
          logger->info("order {} refunded {}", order_id,
                       money::from_cents(result.refunded_cents).to_string());
        }
      } catch (const std::exception& e) {
        logger->warn("refund worker: {}", e.what());
      }
      for (auto waited = milliseconds(0); waited < pause && !refunds_stopping_;
           waited += milliseconds(100))
        std::this_thread::sleep_for(milliseconds(100));
    }
  });
}

void saga_stage_handlers::stop_refunds() {
  refunds_stopping_ = true;
  if (refunds_.joinable())
    refunds_.join();
}

}  // namespace op::orders
