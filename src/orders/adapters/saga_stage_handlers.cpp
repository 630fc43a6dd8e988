#include "orders/adapters/saga_stage_handlers.hpp"

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <random>

#include "orders/adapters/order_json.hpp"
#include "orders/adapters/pg_order_repository.hpp"
#include "platform/json/json_escape.hpp"
#include "platform/log/logging.hpp"
#include "platform/log/trace_context.hpp"
#include "platform/metrics/registry.hpp"
#include "platform/outbox/outbox.hpp"
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

namespace {

using std::chrono::milliseconds;

const char* const validate_consumer = "validate";
const char* const reserve_consumer = "reserve";
const char* const pay_consumer = "pay";
const char* const confirm_consumer = "confirm";
const char* const deadline_consumer = "deadline";

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

// The reservation must be decided with the product rows locked: the plain read saw too
// little stock, or the reservation found less than that read (another order took it).
struct stock_ran_out : std::runtime_error {
  stock_ran_out() : std::runtime_error("not enough stock without a lock; deciding under lock") {}
};

// One statement that changes the stock of every product of order $1 and answers whether
// every product row was changed. It locks the rows first, in product order (the one-time
// filter on `locked` runs before the update scans anything), so concurrent orders cannot
// deadlock.
std::string stock_statement(const std::string& set, const std::string& condition) {
  return "WITH wanted AS (SELECT product_id, sum(quantity)::bigint AS quantity FROM order_items"
         " WHERE order_id = $1 GROUP BY product_id),"
         " locked AS (SELECT product_id FROM products WHERE product_id IN"
         " (SELECT product_id FROM wanted) ORDER BY product_id FOR UPDATE),"
         " changed AS (UPDATE products p SET " +
         set + ", updated_at = now() FROM wanted w WHERE p.product_id = w.product_id" + condition +
         " AND (SELECT count(*) FROM locked) >= 0 RETURNING 1)"
         " SELECT (SELECT count(*) FROM changed) = (SELECT count(*) FROM wanted)";
}

std::string validation_problem(pqxx::work& tx, const std::string& order_id,
                               const std::string& customer_id, std::int64_t total_cents) {
  auto customer = tx.exec_prepared("saga_customer_active", customer_id);
  if (customer.empty())
    return fmt::format("customer {} does not exist", customer_id);
  if (!customer[0][0].as<bool>())
    return fmt::format("customer {} is not active", customer_id);
  std::int64_t sum = 0;
  for (const auto& r : tx.exec_prepared("saga_items_with_catalog", order_id)) {
    auto line = r[0].as<int>();
    auto product = r[1].as<std::string>();
    if (r[4].is_null())
      return fmt::format("product {} does not exist", product);
    if (!r[5].as<bool>())
      return fmt::format("product {} is not active", product);
    auto price = r[3].as<std::int64_t>();
    auto catalog = r[4].as<std::int64_t>();
    if (price != catalog)
      return fmt::format("items[{}].price {} differs from the catalog price {} of {}", line - 1,
                         money::from_cents(price).to_string(),
                         money::from_cents(catalog).to_string(), product);
    sum += r[2].as<std::int64_t>() * price;
  }
  if (sum != total_cents)
    return fmt::format("totalAmount {} differs from the sum of the items {}",
                       money::from_cents(total_cents).to_string(),
                       money::from_cents(sum).to_string());
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
  // Claims the event (when $2 is not null), locks the saga and reads it with its order and
  // the order's items: one row per item. The claim is made before the lock (the one-time
  // filter), as in every transaction that claims, so two copies of an event cannot deadlock.
  c.prepare("saga_lock",
            "WITH claim AS (INSERT INTO processed_events (consumer, event_id)"
            " SELECT $2, $3::uuid WHERE $2::text IS NOT NULL ON CONFLICT DO NOTHING RETURNING 1),"
            " saga AS (SELECT order_id, state, reason, detail, inventory_held, payment_captured,"
            " extract(epoch FROM clock_timestamp() - step_started_at)::float8 AS step_age"
            " FROM sagas WHERE order_id = $1 AND (SELECT count(*) FROM claim) >= 0 FOR UPDATE)"
            " SELECT " +
                order_select_list +
                ", (SELECT count(*) FROM claim) > 0, saga.state, saga.reason, saga.detail,"
                " saga.inventory_held, saga.payment_captured,"
                " extract(epoch FROM clock_timestamp() - created_at)::float8,"
                " coalesce(trace_id, ''), saga.step_age, i.product_id,"
                " coalesce(i.product_name, ''), i.quantity, i.price_cents"
                " FROM saga JOIN orders USING (order_id) LEFT JOIN order_items i USING (order_id)"
                " ORDER BY i.line_no");
  c.prepare("saga_pay_due",
            "SELECT s.state = 'INVENTORY_RESERVED' AND NOT EXISTS (SELECT 1 FROM processed_events"
            " WHERE consumer = $3 AND event_id = $2::uuid), o.total_cents, o.payment_method"
            " FROM sagas s JOIN orders o USING (order_id) WHERE s.order_id = $1");
  c.prepare("saga_pay_retry_due",
            "SELECT s.state = 'INVENTORY_RESERVED' AND EXISTS (SELECT 1 FROM stage_retries"
            " WHERE id = $2 AND attempts = $3), o.total_cents, o.payment_method"
            " FROM sagas s JOIN orders o USING (order_id) WHERE s.order_id = $1");
  // The saga, the order's status and its history in one round trip; answers the order's
  // new updatedAt.
  c.prepare("saga_write",
            "WITH saga AS (UPDATE sagas SET step_started_at = CASE WHEN state <> $2 THEN now()"
            " ELSE step_started_at END, state = $2, reason = $3, detail = $4,"
            " inventory_held = $5, payment_captured = $6, updated_at = now(),"
            " version = version + 1 WHERE order_id = $1),"
            " status AS (UPDATE orders SET status = $2, cancel_reason = $3,"
            " cancel_detail = NULLIF($4, ''), updated_at = now() WHERE order_id = $1"
            " RETURNING updated_at)"
            " INSERT INTO order_events (order_id, seq, status, reason, detail)"
            " SELECT $1, coalesce(max(seq), 0) + 1, $2, $3, NULLIF($4, '')"
            " FROM order_events WHERE order_id = $1 RETURNING (SELECT " +
                iso_timestamp_sql("updated_at") + " FROM status)");
  c.prepare("saga_customer_active", "SELECT active FROM customers WHERE customer_id = $1");
  c.prepare("saga_items_with_catalog",
            "SELECT i.line_no, i.product_id, i.quantity, i.price_cents, p.price_cents, p.active"
            " FROM order_items i LEFT JOIN products p USING (product_id)"
            " WHERE i.order_id = $1 ORDER BY i.line_no");
  // What an order wants of each product and what is available, plainly or locked.
  const std::string stock_of_order =
      "SELECT p.product_id, p.available, w.wanted FROM products p JOIN"
      " (SELECT product_id, sum(quantity)::bigint AS wanted FROM order_items"
      " WHERE order_id = $1 GROUP BY product_id) w USING (product_id)"
      " ORDER BY p.product_id";
  c.prepare("saga_read_stock", stock_of_order);
  c.prepare("saga_lock_stock", stock_of_order + " FOR UPDATE OF p");
  c.prepare("saga_reserve", stock_statement("available = p.available - w.quantity,"
                                            " reserved = p.reserved + w.quantity",
                                            " AND p.available >= w.quantity"));
  c.prepare("saga_release", stock_statement("available = p.available + w.quantity,"
                                            " reserved = p.reserved - w.quantity",
                                            ""));
  c.prepare("saga_commit_stock",
            stock_statement("reserved = p.reserved - w.quantity, sold = p.sold + w.quantity", ""));
  // A capture that arrives after a deadline already asked for a refund fills in the amount.
  c.prepare("saga_record_payment",
            "INSERT INTO payments (order_id, charge_id, amount_cents) VALUES ($1, $2, $3)"
            " ON CONFLICT (order_id) DO UPDATE SET charge_id = EXCLUDED.charge_id,"
            " amount_cents = EXCLUDED.amount_cents WHERE payments.charge_id = ''");
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
            " WHERE order_id = $1 AND refund_state = 'PENDING'");
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
  c.prepare("saga_claim_due_retries",
            "UPDATE stage_retries SET due_at = now() + interval '60 seconds' WHERE id IN"
            " (SELECT id FROM stage_retries WHERE due_at <= now() ORDER BY due_at LIMIT $1"
            " FOR UPDATE SKIP LOCKED) RETURNING id, stage, attempts,"
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

std::optional<saga_stage_handlers::envelope_fields> saga_stage_handlers::decode(
    const kafka::consumed_message& message) {
  rapidjson::Document doc;
  doc.Parse(message.value.c_str(), message.value.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("eventId") ||
      !doc["eventId"].IsString() || !doc.HasMember("orderId") || !doc["orderId"].IsString())
    return std::nullopt;
  envelope_fields fields{doc["eventId"].GetString(), doc["orderId"].GetString()};
  // The event id goes into a uuid column: anything else would fail the step for ever.
  static const std::string uuid_shape = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
  if (fields.event_id.size() != uuid_shape.size() || fields.order_id.empty() ||
      fields.order_id.size() > 64)
    return std::nullopt;
  for (std::size_t i = 0; i < uuid_shape.size(); ++i)
    if ((uuid_shape[i] == '-') != (fields.event_id[i] == '-') ||
        (uuid_shape[i] == 'x' && !std::isxdigit(static_cast<unsigned char>(fields.event_id[i]))))
      return std::nullopt;
  return fields;
}

double saga_stage_handlers::unit_random() {
  thread_local std::mt19937_64 engine{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
}

asio::awaitable<bool> saga_stage_handlers::while_unavailable(const char* consumer,
                                                             const std::string& subject,
                                                             std::function<void()>& work) {
  auto logger = log::get("saga");
  auto run_once = [&work] {
    work();
    return true;
  };
  for (int attempt = 1;; ++attempt) {
    std::string reason;
    try {
      co_await runtime::offload(blocking_, run_once);
      co_return true;
    } catch (const std::exception& e) {
      if (!pg::is_unavailable(e))
        throw;
      reason = e.what();
    }
    if (abandoning_)
      co_return false;
    auto delay = milliseconds(std::min(5000, 100 << std::min(attempt, 6)));
    logger->warn("{}: {} waiting {} ms for the database: {}", consumer, subject, delay.count(),
                 reason);
    asio::steady_timer timer(co_await asio::this_coro::executor, delay);
    co_await timer.async_wait(asio::use_awaitable);
  }
}

asio::awaitable<void> saga_stage_handlers::run_step(const char* consumer,
                                                    const kafka::consumed_message& message,
                                                    const step_effect& effect,
                                                    const stage_retry* retry) {
  auto started = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  };
  auto envelope = decode(message);
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
  const std::string event_id = envelope->event_id;
  const std::string order_id = envelope->order_id;
  const step_claim claim{consumer, event_id, retry};
  std::function<void()> work = [&] { apply_step(consumer, order_id, claim, effect, outcome); };
  const std::string subject = "order " + order_id;
  for (int failures = 0;;) {
    std::string error, error_class;
    try {
      if (!co_await while_unavailable(consumer, subject, work))
        co_return;  // abandoned at shutdown: not committed, delivered again after a restart
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
  return claim_and_lock_saga(tx, order_id, std::nullopt).row;
}

saga_stage_handlers::locked_saga saga_stage_handlers::claim_and_lock_saga(
    pqxx::work& tx, const std::string& order_id, const std::optional<event_claim>& claim) {
  std::optional<std::string> consumer, event_id;
  if (claim) {
    consumer = claim->consumer;
    event_id = claim->event_id;
  }
  auto rows = tx.exec_prepared("saga_lock", order_id, consumer, event_id);
  locked_saga out;
  if (rows.empty())
    return out;
  const auto& r = rows[0];
  out.claimed = r[11].as<bool>();
  saga_row row;
  row.order = read_order_columns(r);
  row.order_id = order_id;
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
  for (const auto& item : rows)
    if (!item[20].is_null())
      row.order.items.push_back(read_item_columns(item, 20));
  out.row = std::move(row);
  return out;
}

std::string saga_stage_handlers::transition(pqxx::work& tx, const char* consumer,
                                            const saga_row& row, const saga_event& event,
                                            std::vector<stock_change>& stock) {
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
  const auto& next = std::get<saga_transition>(result);
  carry_out(tx, row, next, stock);
  logger->debug("{}: {} -> {}", consumer, to_string(row.state.status), to_string(next.next.status));
  if (is_terminal(next.next.status) && next.next.status != row.state.status)
    record_final(next.next, row.age_seconds);
  return "applied";
}

void saga_stage_handlers::commit_with_stock(pqxx::work& tx, const std::string& order_id,
                                            const std::vector<stock_change>& stock) {
  for (auto change : stock) {
    switch (change) {
      case stock_change::reserve:
        if (!tx.exec_prepared1("saga_reserve", order_id)[0].as<bool>())
          throw stock_ran_out();
        break;
      case stock_change::release:
        tx.exec_prepared1("saga_release", order_id);
        break;
      case stock_change::commit:
        tx.exec_prepared1("saga_commit_stock", order_id);
        break;
    }
  }
  tx.commit();
}

void saga_stage_handlers::apply_step(const char* consumer, const std::string& order_id,
                                     const step_claim& claim, const step_effect& effect,
                                     std::string& outcome) {
  auto logger = log::get("saga");
  pool_.with_connection([&](pqxx::connection& c) {
    for (bool lock_stock_first : {false, true}) {
      pqxx::work tx(c);
      std::optional<event_claim> by_event;
      if (claim.retry) {
        // The event id was claimed when the retry was scheduled; the retry's row is the claim.
        if (tx.exec_prepared("saga_take_retry", claim.retry->id, claim.retry->attempts)
                .affected_rows() == 0) {
          outcome = "duplicate";
          return;
        }
      } else {
        by_event = event_claim{claim.consumer, claim.event_id};
      }
      auto [claimed, row] = claim_and_lock_saga(tx, order_id, by_event);
      if (!row) {
        logger->warn("{}: no saga for order {}; event dropped", consumer, order_id);
        tx.commit();
        return;
      }
      if (by_event && !claimed) {
        outcome = "duplicate";
        logger->debug("{}: order {}: already handled", consumer, order_id);
        return;
      }
      log::scoped_context logged(row->order_id, row->trace_id);
      step_context step;
      step.lock_stock_first = lock_stock_first;
      try {
        auto event = effect(tx, *row, step);
        if (event)
          step.outcome = transition(tx, consumer, *row, *event, step.stock);
        commit_with_stock(tx, order_id, step.stock);
      } catch (const stock_ran_out&) {
        if (lock_stock_first)
          throw;  // cannot happen: the rows were locked when the stock was read
        logger->debug("{}: order {}: stock changed meanwhile; deciding again under lock", consumer,
                      order_id);
        continue;
      }
      outcome = step.outcome;
      return;
    }
  });
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
      std::vector<stock_change> stock;
      dead_letters_.park(tx, failed);
      if (compensate && order_id) {
        if (retry)
          tx.exec_prepared("saga_take_retry", retry->id, retry->attempts);
        if (auto row = lock_saga(tx, *order_id)) {
          log::scoped_context logged(row->order_id, row->trace_id);
          transition(tx, consumer, *row,
                     events::processing_failed{fmt::format("{}: {}", consumer, error)}, stock);
        }
      }
      commit_with_stock(tx, order_id.value_or(""), stock);
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

std::vector<stage_retry> saga_stage_handlers::claim_due_retries(int limit) {
  std::vector<stage_retry> out;
  pool_.with_connection([&](pqxx::connection& c) {
    pqxx::work tx(c);
    for (const auto& r : tx.exec_prepared("saga_claim_due_retries", limit)) {
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
      rapidjson::Document headers;
      headers.Parse(r[9].c_str());
      if (!headers.HasParseError() && headers.IsObject())
        for (const auto& h : headers.GetObject())
          if (h.value.IsString())
            retry.message.headers[h.name.GetString()] = h.value.GetString();
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
      std::vector<stock_change> stock;
      if (transition(tx, deadline_consumer, *row, events::deadline_expired{}, stock) != "applied")
        return;
      commit_with_stock(tx, order_id, stock);
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

std::int64_t saga_stage_handlers::pending_retries() {
  return pool_.with_connection([](pqxx::connection& c) {
    pqxx::work tx(c);
    return tx.exec_prepared1("saga_count_retries")[0].as<std::int64_t>();
  });
}

void saga_stage_handlers::carry_out(pqxx::work& tx, const saga_row& row,
                                    const saga_transition& transition,
                                    std::vector<stock_change>& stock) {
  const auto& order_id = row.order_id;
  const auto& trace_id = row.trace_id;
  const auto& next = transition.next;
  std::string status(to_string(next.status));
  std::optional<std::string> reason;
  if (next.reason)
    reason = std::string(to_string(*next.reason));
  // The order as the events publish it, after this step.
  auto order = row.order;
  order.status = status;
  order.cancel_reason = reason.value_or("");
  order.cancel_detail = next.detail;
  order.updated_at = tx.exec_prepared1("saga_write", order_id, status, reason, next.detail,
                                       next.inventory_held, next.payment_captured)[0]
                         .as<std::string>();

  for (const auto& command : transition.commands) {
    switch (command.kind) {
      case command_kind::release_inventory:
        stock.push_back(stock_change::release);
        break;
      case command_kind::commit_inventory:
        stock.push_back(stock_change::commit);
        break;
      case command_kind::refund_payment:
        tx.exec_prepared("saga_request_refund", order_id);
        break;
      case command_kind::publish: {
        auto topic = *command.topic;
        const std::string* name = nullptr;
        switch (topic) {
          case topic_kind::order_validated:
            name = &settings_.topics.order_validated;
            break;
          case topic_kind::inventory_reserved:
            name = &settings_.topics.inventory_reserved;
            break;
          case topic_kind::payment_processed:
            name = &settings_.topics.payment_processed;
            break;
          case topic_kind::order_confirmed:
            name = &settings_.topics.order_confirmed;
            break;
          case topic_kind::order_failed:
            name = &settings_.topics.order_failed;
            break;
        }
        outbox::append(tx, {*name, order_id, event_type_of(topic), order_id, order_json(order),
                            trace_id.empty() ? "" : log::make_traceparent(trace_id)});
        break;
      }
    }
  }
}

asio::awaitable<void> saga_stage_handlers::validate(const kafka::consumed_message& message) {
  const step_effect effect = [](pqxx::work& tx, const saga_row& row,
                                step_context&) -> std::optional<saga_event> {
    if (row.state.status != order_status::placed)
      return events::validation_passed{};  // the saga refuses it, logged
    auto problem =
        validation_problem(tx, row.order_id, row.order.customer_id, row.order.total_amount.cents());
    if (problem.empty())
      return events::validation_passed{};
    return events::validation_failed{problem};
  };
  co_await run_step(validate_consumer, message, effect, nullptr);
}

asio::awaitable<void> saga_stage_handlers::reserve(const kafka::consumed_message& message) {
  const step_effect effect = [](pqxx::work& tx, const saga_row& row,
                                step_context& step) -> std::optional<saga_event> {
    if (row.state.status != order_status::validated)
      return events::inventory_reserved{};
    // All items or none. Usually a plain read sees enough stock and the reservation is
    // taken at the commit (step_context). Otherwise the product rows are locked (in product
    // order, so concurrent orders cannot deadlock) and out of stock is decided under the lock.
    auto stock = tx.exec_prepared(step.lock_stock_first ? "saga_lock_stock" : "saga_read_stock",
                                  row.order_id);
    for (const auto& r : stock) {
      auto available = r[1].as<std::int64_t>();
      auto wanted = r[2].as<std::int64_t>();
      if (available >= wanted)
        continue;
      if (!step.lock_stock_first)
        throw stock_ran_out();
      return events::out_of_stock{fmt::format("product {}: {} wanted, {} available",
                                              r[0].as<std::string>(), wanted, available)};
    }
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
  auto envelope = decode(message);
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
