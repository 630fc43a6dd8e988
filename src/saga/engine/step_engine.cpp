#include "saga/engine/step_engine.hpp"

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

namespace op::saga {

using namespace orders;

struct step_engine::locked_saga {
  bool claimed = false;  // the event was new (always false without a claim)
  std::optional<saga_row> row;
};

struct step_engine::step_writes {
  struct saga_change {
    const saga_row* row;
    saga_transition transition;
  };
  std::vector<saga_change> sagas;
  // Orders reaching their final state, counted once the transaction committed.
  std::vector<std::pair<saga_state, double>> finals;
};

namespace {

using std::chrono::milliseconds;

// Who asks for a transition outside a stage's step, in logs.
const char* const deadline_caller = "deadline";
const char* const cancel_caller = "cancel";

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

step_engine::step_engine(pg::connection_pool& pool, asio::thread_pool& blocking,
                         const dead_letter_queue& dead_letters, engine_settings settings)
    : pool_(pool),
      blocking_(blocking),
      dead_letters_(dead_letters),
      settings_(std::move(settings)) {
  // Every outcome series exists from the start, at zero, so rates and alerts work before
  // the first such order.
  record_final_counters_at_zero();
  auto& registry = metrics::global();
  for (auto step :
       {saga_step::validation, saga_step::reservation, saga_step::payment, saga_step::confirmation})
    registry.get_counter("saga_deadlines_expired_total",
                         "Sagas compensated because a step passed its deadline.",
                         {{"step", std::string(to_string(step))}});
}

void step_engine::add_stage(const std::string& name, stage_runner runner) {
  auto [it, added] = stages_.try_emplace(name);
  if (!added)
    throw std::logic_error("stage " + name + " declared twice");
  it->second.runner = std::move(runner);
  it->second.batcher = std::make_unique<runtime::batcher<step_job>>(
      blocking_, [this](const std::vector<step_job*>& jobs) { apply_steps(jobs); },
      settings_.batch_size, settings_.parallel_batches);
  metrics::global().get_counter("pipeline_retries_scheduled_total",
                                "Saga steps scheduled to run again after a transient failure.",
                                {{"stage", name}});
}

void step_engine::on_command(command_kind kind, command_handler handler) {
  commands_[kind] = std::move(handler);
}

asio::awaitable<void> step_engine::handle(std::string_view stage,
                                          const kafka::consumed_message& message) {
  co_await stage_named(stage).runner(message, nullptr);
}

void step_engine::prepare_statements(pqxx::connection& c) {
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

step_engine::stage& step_engine::stage_named(std::string_view name) {
  auto it = stages_.find(name);
  if (it == stages_.end())
    throw std::logic_error(fmt::format("no stage {} was declared", name));
  return it->second;
}

asio::awaitable<void> step_engine::run_step(std::string_view stage,
                                            const kafka::consumed_message& message,
                                            const step_effect& effect, const stage_retry* retry) {
  // The stage's own name, which outlives the step (the caller's may not).
  stage = stages_.find(stage) == stages_.end() ? stage : stages_.find(stage)->first;
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
  step_job job{stage, order_id, envelope->event_id, retry, &effect};
  std::function<asio::awaitable<void>()> work = [&]() -> asio::awaitable<void> {
    co_await stage_named(stage).batcher->run(job);
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
      if (auto delay = retry_delay(settings_.retry, failures, unit_random())) {
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

std::optional<saga_row> step_engine::lock_saga(pqxx::work& tx, const std::string& order_id) {
  auto locked = claim_and_lock_sagas(tx, {}, {{order_id, std::nullopt}});
  if (locked.empty())
    return std::nullopt;
  return std::move(locked.begin()->second.row);
}

std::map<std::string, step_engine::locked_saga> step_engine::claim_and_lock_sagas(
    pqxx::work& tx, std::string_view stage, const std::vector<lock_request>& requests) {
  std::vector<std::string_view> order_ids;
  std::vector<std::optional<std::string_view>> event_ids;
  for (const auto& request : requests) {
    order_ids.push_back(request.order_id);
    event_ids.push_back(request.event_id);
  }
  std::optional<std::string> claimer;
  if (!stage.empty())
    claimer = std::string(stage);
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

std::string step_engine::transition(transaction_scope& scope, std::string_view stage,
                                    const saga_row& row, const saga_event& event,
                                    step_writes& writes) {
  auto logger = log::get("saga");
  auto result = order_saga::apply(row.state, event);
  if (auto* rejection = std::get_if<saga_rejection>(&result)) {
    // Late, duplicated or out-of-order: record the event as seen and change nothing. A saga
    // row that contradicts itself is corrupt data an operator must look at.
    if (rejection->error == saga_error::inconsistent_state)
      logger->error("{}: order {}: {}", stage, row.order_id, describe(*rejection));
    else
      logger->warn("{}: order {}: {}", stage, row.order_id, describe(*rejection));
    return "rejected";
  }
  auto& next = std::get<saga_transition>(result);
  for (const auto& command : next.commands) {
    if (command.kind == command_kind::publish)
      continue;  // written with the saga, which gives the event its updatedAt
    auto handler = commands_.find(command.kind);
    if (handler == commands_.end())
      throw std::logic_error("nobody carries out " + to_string(command));
    handler->second(scope, row);
  }
  logger->debug("{}: {} -> {}", stage, to_string(row.state.status), to_string(next.next.status));
  if (is_terminal(next.next.status) && next.next.status != row.state.status)
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
  scope.before_commit();
  tx.commit();
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
    } catch (const decide_again_under_lock& e) {
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
  auto locked = claim_and_lock_sagas(tx, stage, requests);
  std::vector<std::pair<step_job*, const saga_row*>> steps;
  std::vector<const saga_row*> rows;
  for (auto* job : taken) {
    auto it = locked.find(job->order_id);
    if (it == locked.end() || !it->second.row) {
      logger->warn("{}: no saga for order {}; event dropped", stage, job->order_id);
      job->outcome = "skipped";
      continue;
    }
    if (!job->retry && !it->second.claimed) {
      logger->debug("{}: order {}: already handled", stage, job->order_id);
      job->outcome = "duplicate";
      continue;
    }
    steps.emplace_back(job, &*it->second.row);
    rows.push_back(&*it->second.row);
  }
  transaction_scope scope(tx, std::move(rows), under_lock);
  step_writes writes;
  for (auto [job, row] : steps) {
    log::scoped_context logged(row->order_id, row->trace_id);
    step_context step{scope};
    auto event = (*job->effect)(*row, step);
    if (event)
      step.outcome = transition(scope, stage, *row, *event, writes);
    job->outcome = step.outcome;
  }
  write_and_commit(scope, writes);
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
  metrics::global()
      .get_counter("pipeline_retries_scheduled_total",
                   "Saga steps scheduled to run again after a transient failure.",
                   {{"stage", std::string(stage)}})
      .inc();
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

asio::awaitable<void> step_engine::run_retry(const stage_retry& retry) {
  try {
    if (auto it = stages_.find(retry.stage); it != stages_.end()) {
      co_await it->second.runner(retry.message, &retry);
    } else {
      // A stage this program does not declare (any more): nobody can run it.
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

int step_engine::expire_overdue(int limit) {
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
      transaction_scope scope(tx, {}, false);
      step_writes writes;
      if (transition(scope, deadline_caller, *row, events::deadline_expired{}, writes) != "applied")
        return;
      write_and_commit(scope, writes);
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
    if (state.status == order_status::cancelled &&
        state.reason == cancel_reason::customer_cancelled) {
      // Cancelled by an earlier request: answer what that one did.
      bool refund = refund_requested_ && refund_requested_(tx, order_id);
      return {refund ? kind::refunding : kind::cancelled, "CANCELLED"};
    }
    if (is_terminal(state.status))
      return {kind::conflict, std::string(to_string(state.status))};
    transaction_scope scope(tx, {}, false);
    step_writes writes;
    if (transition(scope, cancel_caller, *row, events::cancel_requested{}, writes) != "applied")
      return {kind::conflict, std::string(to_string(state.status))};
    bool refund = false;
    for (const auto& command : writes.sagas.back().transition.commands)
      refund = refund || command.kind == command_kind::refund_payment;
    write_and_commit(scope, writes);
    log::get("saga")->info("order {} cancelled at the customer's request in {}{}", order_id,
                           to_string(state.status), refund ? "; refund requested" : "");
    return {refund ? kind::refunding : kind::cancelled, "CANCELLED"};
  });
}

std::int64_t step_engine::pending_retries() {
  return pool_.with_connection([](pqxx::connection& c) {
    pqxx::work tx(c);
    return tx.exec_prepared1("saga_count_retries")[0].as<std::int64_t>();
  });
}

const std::string& step_engine::topic_name(topic_kind topic) const {
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

}  // namespace op::saga
