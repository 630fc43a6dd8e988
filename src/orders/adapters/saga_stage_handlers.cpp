#include "orders/adapters/saga_stage_handlers.hpp"

#include <fmt/format.h>
#include <rapidjson/document.h>

#include "orders/adapters/order_json.hpp"
#include "orders/adapters/pg_order_repository.hpp"
#include "platform/json/json_escape.hpp"
#include "platform/log/logging.hpp"
#include "platform/log/trace_context.hpp"
#include "platform/metrics/registry.hpp"
#include "platform/outbox/outbox.hpp"
#include "platform/pg/pg_errors.hpp"
#include "platform/runtime/offload.hpp"

namespace op::orders {

struct saga_stage_handlers::saga_row {
  std::string order_id;
  saga_state state;
  std::string customer_id;
  std::int64_t total_cents = 0;
  std::string payment_method;
  double age_seconds = 0;  // since the order was placed
  std::string trace_id;
};

namespace {

using std::chrono::milliseconds;

const char* const validate_consumer = "validate";
const char* const reserve_consumer = "reserve";
const char* const pay_consumer = "pay";
const char* const confirm_consumer = "confirm";

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

// Adds up an order's quantities per product, in product order: every transaction locks
// product rows in the same order, so concurrent orders cannot deadlock.
std::vector<std::pair<std::string, std::int64_t>> quantities(pqxx::work& tx,
                                                             const std::string& order_id) {
  std::vector<std::pair<std::string, std::int64_t>> out;
  for (const auto& r : tx.exec_prepared("saga_order_quantities", order_id))
    out.emplace_back(r[0].as<std::string>(), r[1].as<std::int64_t>());
  return out;
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
                                         payments::payment_gateway& gateway, saga_topics topics)
    : pool_(pool), blocking_(blocking), gateway_(gateway), topics_(std::move(topics)) {
  // Every outcome series exists from the start, at zero, so rates and alerts work before
  // the first such order.
  record_final_counters_at_zero();
}

void saga_stage_handlers::prepare_statements(pqxx::connection& c) {
  c.prepare("saga_claim_event",
            "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2::uuid)"
            " ON CONFLICT DO NOTHING");
  c.prepare("saga_event_processed",
            "SELECT 1 FROM processed_events WHERE consumer = $1 AND event_id = $2::uuid");
  c.prepare("saga_lock",
            "SELECT s.state, s.reason, s.detail, s.inventory_held, s.payment_captured,"
            " o.customer_id, o.total_cents, o.payment_method,"
            " extract(epoch FROM clock_timestamp() - o.created_at)::float8,"
            " coalesce(o.trace_id, '') FROM sagas s"
            " JOIN orders o USING (order_id) WHERE s.order_id = $1 FOR UPDATE OF s");
  c.prepare("saga_peek",
            "SELECT s.state, o.total_cents, o.payment_method FROM sagas s"
            " JOIN orders o USING (order_id) WHERE s.order_id = $1");
  c.prepare("saga_update",
            "UPDATE sagas SET step_started_at = CASE WHEN state <> $2 THEN now()"
            " ELSE step_started_at END, state = $2, reason = $3, detail = $4,"
            " inventory_held = $5, payment_captured = $6, updated_at = now(),"
            " version = version + 1 WHERE order_id = $1");
  c.prepare("saga_order_status",
            "UPDATE orders SET status = $2, cancel_reason = $3, cancel_detail = NULLIF($4, ''),"
            " updated_at = now() WHERE order_id = $1");
  c.prepare("saga_history_append",
            "INSERT INTO order_events (order_id, seq, status, reason, detail)"
            " SELECT $1, coalesce(max(seq), 0) + 1, $2, $3, NULLIF($4, '')"
            " FROM order_events WHERE order_id = $1");
  c.prepare("saga_customer_active", "SELECT active FROM customers WHERE customer_id = $1");
  c.prepare("saga_items_with_catalog",
            "SELECT i.line_no, i.product_id, i.quantity, i.price_cents, p.price_cents, p.active"
            " FROM order_items i LEFT JOIN products p USING (product_id)"
            " WHERE i.order_id = $1 ORDER BY i.line_no");
  c.prepare("saga_order_quantities",
            "SELECT product_id, sum(quantity)::bigint FROM order_items WHERE order_id = $1"
            " GROUP BY product_id ORDER BY product_id");
  c.prepare("saga_lock_stock",
            "SELECT p.product_id, p.available, w.wanted FROM products p JOIN"
            " (SELECT product_id, sum(quantity)::bigint AS wanted FROM order_items"
            " WHERE order_id = $1 GROUP BY product_id) w USING (product_id)"
            " ORDER BY p.product_id FOR UPDATE OF p");
  c.prepare("saga_reserve",
            "UPDATE products SET available = available - $2, reserved = reserved + $2,"
            " updated_at = now() WHERE product_id = $1 AND available >= $2");
  c.prepare("saga_release",
            "UPDATE products SET available = available + $2, reserved = reserved - $2,"
            " updated_at = now() WHERE product_id = $1");
  c.prepare("saga_commit_stock",
            "UPDATE products SET reserved = reserved - $2, sold = sold + $2, updated_at = now()"
            " WHERE product_id = $1");
  c.prepare("saga_record_payment",
            "INSERT INTO payments (order_id, charge_id, amount_cents) VALUES ($1, $2, $3)"
            " ON CONFLICT (order_id) DO NOTHING");
  c.prepare("saga_request_refund",
            "INSERT INTO payments (order_id, charge_id, amount_cents, refund_state)"
            " VALUES ($1, '', 0, 'PENDING') ON CONFLICT (order_id) DO UPDATE"
            " SET refund_state = 'PENDING' WHERE payments.refund_state IS NULL");
  c.prepare("saga_pending_refunds",
            "SELECT order_id FROM payments WHERE refund_state = 'PENDING' ORDER BY order_id"
            " LIMIT 100");
  c.prepare("saga_refund_done",
            "UPDATE payments SET refund_state = 'REFUNDED', refunded_cents = $2,"
            " refunded_at = now() WHERE order_id = $1 AND refund_state = 'PENDING'");
}

std::optional<saga_stage_handlers::envelope_fields> saga_stage_handlers::decode(
    const kafka::consumed_message& message) {
  rapidjson::Document doc;
  doc.Parse(message.value.c_str(), message.value.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("eventId") ||
      !doc["eventId"].IsString() || !doc.HasMember("orderId") || !doc["orderId"].IsString())
    return std::nullopt;
  return envelope_fields{doc["eventId"].GetString(), doc["orderId"].GetString()};
}

asio::awaitable<bool> saga_stage_handlers::retry_transient(const char* consumer,
                                                           const std::string& order_id,
                                                           std::function<void()>& work) {
  auto logger = log::get("saga");
  auto run_once = [&work] {
    work();
    return true;
  };
  // The database being away is no reason to lose or skip a message: wait and try again.
  for (int attempt = 1;; ++attempt) {
    std::string transient;
    try {
      co_await runtime::offload(blocking_, run_once);
      co_return true;
    } catch (const std::exception& e) {
      if (!pg::is_transient(e)) {
        logger->error("{}: order {} failed: {}", consumer, order_id, e.what());
        co_return false;
      }
      transient = e.what();
    }
    auto delay = milliseconds(std::min(5000, 100 << std::min(attempt, 6)));
    logger->warn("{}: order {} retrying in {} ms after a transient error: {}", consumer, order_id,
                 delay.count(), transient);
    asio::steady_timer timer(co_await asio::this_coro::executor, delay);
    co_await timer.async_wait(asio::use_awaitable);
  }
}

asio::awaitable<void> saga_stage_handlers::run_step(const char* consumer,
                                                    const kafka::consumed_message& message,
                                                    const step_effect& effect) {
  auto envelope = decode(message);
  if (!envelope) {
    log::get("saga")->error("{}: undecodable message {}[{}]@{} skipped", consumer, message.topic,
                            message.partition, message.offset);
    count_message(consumer, "undecodable", 0);
    co_return;
  }
  auto started = std::chrono::steady_clock::now();
  std::string outcome = "skipped";
  std::function<void()> work = [&] { apply_step(consumer, *envelope, effect, outcome); };
  if (!co_await retry_transient(consumer, envelope->order_id, work))
    outcome = "failed";
  count_message(consumer, outcome,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
}

void saga_stage_handlers::apply_step(const char* consumer, const envelope_fields& envelope,
                                     const step_effect& effect, std::string& outcome) {
  auto logger = log::get("saga");
  pool_.with_connection([&](pqxx::connection& c) {
    pqxx::work tx(c);
    if (tx.exec_prepared("saga_claim_event", consumer, envelope.event_id).affected_rows() == 0) {
      outcome = "duplicate";
      logger->debug("{}: event {} of order {} already applied", consumer, envelope.event_id,
                    envelope.order_id);
      return;
    }
    auto rows = tx.exec_prepared("saga_lock", envelope.order_id);
    if (rows.empty()) {
      logger->warn("{}: no saga for order {}; event dropped", consumer, envelope.order_id);
      tx.commit();
      return;
    }
    const auto& r = rows[0];
    saga_row row;
    row.order_id = envelope.order_id;
    auto status = parse_order_status(r[0].as<std::string>());
    if (!status)
      throw std::runtime_error("unknown saga state " + r[0].as<std::string>());
    row.state.status = *status;
    if (!r[1].is_null())
      row.state.reason = parse_cancel_reason(r[1].as<std::string>());
    row.state.detail = r[2].as<std::string>();
    row.state.inventory_held = r[3].as<bool>();
    row.state.payment_captured = r[4].as<bool>();
    row.customer_id = r[5].as<std::string>();
    row.total_cents = r[6].as<std::int64_t>();
    row.payment_method = r[7].as<std::string>();
    row.age_seconds = r[8].as<double>();
    row.trace_id = r[9].as<std::string>();
    log::scoped_context logged(row.order_id, row.trace_id);

    auto event = effect(tx, row);
    if (!event) {
      tx.commit();
      return;
    }
    auto result = order_saga::apply(row.state, *event);
    if (auto* rejection = std::get_if<saga_rejection>(&result)) {
      outcome = "rejected";
      // Late, duplicated or out-of-order: record the event as seen and change nothing. A saga
      // row that contradicts itself is corrupt data an operator must look at.
      if (rejection->error == saga_error::inconsistent_state)
        logger->error("{}: order {}: {}", consumer, envelope.order_id, describe(*rejection));
      else
        logger->warn("{}: order {}: {}", consumer, envelope.order_id, describe(*rejection));
      tx.commit();
      return;
    }
    const auto& transition = std::get<saga_transition>(result);
    carry_out(tx, envelope.order_id, row.trace_id, transition);
    tx.commit();
    outcome = "applied";
    logger->debug("{}: {} -> {}", consumer, to_string(row.state.status),
                  to_string(transition.next.status));
    if (is_terminal(transition.next.status) && transition.next.status != row.state.status)
      record_final(transition.next, row.age_seconds);
  });
}

void saga_stage_handlers::carry_out(pqxx::work& tx, const std::string& order_id,
                                    const std::string& trace_id,
                                    const saga_transition& transition) {
  const auto& next = transition.next;
  std::string status(to_string(next.status));
  std::optional<std::string> reason;
  if (next.reason)
    reason = std::string(to_string(*next.reason));
  tx.exec_prepared("saga_update", order_id, status, reason, next.detail, next.inventory_held,
                   next.payment_captured);
  tx.exec_prepared("saga_order_status", order_id, status, reason, next.detail);
  tx.exec_prepared("saga_history_append", order_id, status, reason, next.detail);

  for (const auto& command : transition.commands) {
    switch (command.kind) {
      case command_kind::release_inventory:
        for (const auto& [product, quantity] : quantities(tx, order_id))
          tx.exec_prepared("saga_release", product, quantity);
        break;
      case command_kind::commit_inventory:
        for (const auto& [product, quantity] : quantities(tx, order_id))
          tx.exec_prepared("saga_commit_stock", product, quantity);
        break;
      case command_kind::refund_payment:
        tx.exec_prepared("saga_request_refund", order_id);
        break;
      case command_kind::publish: {
        auto topic = *command.topic;
        const std::string* name = nullptr;
        switch (topic) {
          case topic_kind::order_validated:
            name = &topics_.order_validated;
            break;
          case topic_kind::inventory_reserved:
            name = &topics_.inventory_reserved;
            break;
          case topic_kind::payment_processed:
            name = &topics_.payment_processed;
            break;
          case topic_kind::order_confirmed:
            name = &topics_.order_confirmed;
            break;
          case topic_kind::order_failed:
            name = &topics_.order_failed;
            break;
        }
        auto order = load_order(tx, order_id);
        outbox::append(
            tx, {*name, order_id, event_type_of(topic), order_id, order ? order_json(*order) : "{}",
                 trace_id.empty() ? "" : log::make_traceparent(trace_id)});
        break;
      }
    }
  }
}

asio::awaitable<void> saga_stage_handlers::validate(const kafka::consumed_message& message) {
  const step_effect effect = [](pqxx::work& tx, const saga_row& row) -> std::optional<saga_event> {
    if (row.state.status != order_status::placed)
      return events::validation_passed{};  // the saga refuses it, logged
    auto problem = validation_problem(tx, row.order_id, row.customer_id, row.total_cents);
    if (problem.empty())
      return events::validation_passed{};
    return events::validation_failed{problem};
  };
  co_await run_step(validate_consumer, message, effect);
}

asio::awaitable<void> saga_stage_handlers::reserve(const kafka::consumed_message& message) {
  const step_effect effect = [](pqxx::work& tx, const saga_row& row) -> std::optional<saga_event> {
    if (row.state.status != order_status::validated)
      return events::inventory_reserved{};
    // All items or none: lock the order's product rows (in product order, so concurrent
    // orders cannot deadlock), check every quantity, and only then take the stock.
    auto locked = tx.exec_prepared("saga_lock_stock", row.order_id);
    for (const auto& r : locked) {
      auto available = r[1].as<std::int64_t>();
      auto wanted = r[2].as<std::int64_t>();
      if (available < wanted)
        return events::out_of_stock{fmt::format("product {}: {} wanted, {} available",
                                                r[0].as<std::string>(), wanted, available)};
    }
    for (const auto& r : locked)
      tx.exec_prepared("saga_reserve", r[0].as<std::string>(), r[2].as<std::int64_t>());
    return events::inventory_reserved{};
  };
  co_await run_step(reserve_consumer, message, effect);
}

asio::awaitable<void> saga_stage_handlers::pay(const kafka::consumed_message& message) {
  auto envelope = decode(message);
  if (!envelope) {
    const step_effect nothing;
    co_await run_step(pay_consumer, message, nothing);
    co_return;
  }
  // Charge only an order that waits for its payment and whose event is new; a duplicate that
  // slips through is still charged once: the gateway call is idempotent by order id.
  bool due = false;
  payments::charge_request request;
  request.order_id = envelope->order_id;
  std::function<void()> peek = [&] {
    pool_.with_connection([&](pqxx::connection& c) {
      pqxx::work tx(c);
      auto rows = tx.exec_prepared("saga_peek", envelope->order_id);
      if (rows.empty() || rows[0][0].as<std::string>() != "INVENTORY_RESERVED")
        return;
      if (!tx.exec_prepared("saga_event_processed", pay_consumer, envelope->event_id).empty())
        return;
      due = true;
      request.amount_cents = rows[0][1].as<std::int64_t>();
      request.payment_method = rows[0][2].as<std::string>();
    });
  };
  if (!co_await retry_transient(pay_consumer, envelope->order_id, peek))
    co_return;

  std::optional<payments::charge_result> charged;
  if (due)
    charged = co_await gateway_.charge(request);

  const step_effect effect = [&charged](pqxx::work& tx,
                                        const saga_row& row) -> std::optional<saga_event> {
    if (!charged)
      return std::nullopt;
    switch (charged->outcome) {
      case payments::gateway_outcome::approved:
        tx.exec_prepared("saga_record_payment", row.order_id, charged->charge_id, row.total_cents);
        return events::payment_captured{charged->charge_id};
      case payments::gateway_outcome::declined:
        return events::payment_declined{
            charged->decline_code.empty()
                ? charged->message
                : fmt::format("{}: {}", charged->decline_code, charged->message)};
      case payments::gateway_outcome::transient_failure:
      case payments::gateway_outcome::unavailable:
        break;
    }
    return events::payment_failed{charged->message};
  };
  co_await run_step(pay_consumer, message, effect);
}

asio::awaitable<void> saga_stage_handlers::confirm(const kafka::consumed_message& message) {
  const step_effect effect = [](pqxx::work&, const saga_row&) -> std::optional<saga_event> {
    return events::order_confirmed{};
  };
  co_await run_step(confirm_consumer, message, effect);
}

void saga_stage_handlers::start_refunds(asio::io_context& ioc) {
  refunds_ = std::thread([this, &ioc] {
    auto logger = log::get("payments");
    while (!refunds_stopping_) {
      try {
        std::vector<std::string> pending;
        pool_.with_connection([&](pqxx::connection& c) {
          pqxx::work tx(c);
          for (const auto& r : tx.exec_prepared("saga_pending_refunds"))
            pending.push_back(r[0].as<std::string>());
        });
        for (const auto& order_id : pending) {
          if (refunds_stopping_)
            break;
          auto result = asio::co_spawn(ioc, gateway_.refund(order_id), asio::use_future).get();
          if (result.outcome == payments::gateway_outcome::transient_failure ||
              result.outcome == payments::gateway_outcome::unavailable) {
            logger->warn("refund of order {} failed, will retry: {}", order_id, result.message);
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
      for (int i = 0; i < 5 && !refunds_stopping_; ++i)
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
