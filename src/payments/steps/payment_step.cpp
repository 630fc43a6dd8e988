#include "payments/steps/payment_step.hpp"

#include <fmt/format.h>

#include <functional>
#include <optional>
#include <string>

#include "orders/adapters/event_envelope.hpp"
#include "platform/log/logging.hpp"

namespace op::payments {

void payment_step::prepare_statements(pqxx::connection& c) {
  c.prepare("saga_pay_due",
            "SELECT s.state = 'INVENTORY_RESERVED' AND NOT EXISTS (SELECT 1 FROM processed_events"
            " WHERE consumer = $3 AND event_id = $2::uuid), o.total_cents, o.payment_method"
            " FROM sagas s JOIN orders o USING (order_id) WHERE s.order_id = $1");
  c.prepare("saga_pay_retry_due",
            "SELECT s.state = 'INVENTORY_RESERVED' AND EXISTS (SELECT 1 FROM stage_retries"
            " WHERE id = $2 AND attempts = $3), o.total_cents, o.payment_method"
            " FROM sagas s JOIN orders o USING (order_id) WHERE s.order_id = $1");
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
}

void payment_step::request_refund(saga::transaction_scope& scope, const saga::saga_row& row) {
  scope.tx().exec_prepared("saga_request_refund", row.order_id);
}

bool payment_step::refund_requested(pqxx::work& tx, const std::string& order_id) {
  return !tx.exec_prepared("saga_refund_requested", order_id).empty();
}

asio::awaitable<void> payment_step::run(const kafka::consumed_message& message,
                                        const saga::stage_retry* retry) {
  auto envelope = orders::decode_event_envelope(message.value);
  if (!envelope) {
    const saga::step_effect nothing;  // run_step dead-letters it
    co_await engine_.run_step(name, message, nothing, retry);
    co_return;
  }
  // Charge only an order that waits for its payment and whose event (or retry) is new; a
  // duplicate that slips through is still charged once: the gateway call is idempotent by
  // order id.
  bool due = false;
  charge_request request;
  request.order_id = envelope->order_id;
  std::function<void()> peek = [&] {
    pool_.with_connection([&](pqxx::connection& c) {
      pqxx::nontransaction read(c);  // one statement: no BEGIN/COMMIT round trips
      auto rows =
          retry ? read.exec_prepared("saga_pay_retry_due", envelope->order_id, retry->id,
                                     retry->attempts)
                : read.exec_prepared("saga_pay_due", envelope->order_id, envelope->event_id, name);
      if (rows.empty() || !rows[0][0].as<bool>())
        return;
      due = true;
      request.amount_cents = rows[0][1].as<std::int64_t>();
      request.payment_method = rows[0][2].as<std::string>();
    });
  };
  const std::string subject = "order " + envelope->order_id;
  try {
    if (!co_await engine_.while_unavailable(name, subject, peek))
      co_return;
  } catch (const std::exception& e) {
    log::get("saga")->error("pay: order {}: {}", envelope->order_id, e.what());
  }

  std::optional<charge_result> charged;
  if (due)
    charged = co_await gateway_.charge(request);

  const int earlier_failures = retry ? retry->attempts : 0;
  const saga::step_effect effect =
      [&](const saga::saga_row& row,
          saga::step_context& step) -> std::optional<orders::saga_event> {
    if (!charged)
      return std::nullopt;
    auto& tx = step.scope.tx();
    const auto& policy = engine_.retry_policy();
    switch (charged->outcome) {
      case gateway_outcome::approved:
        tx.exec_prepared("saga_record_payment", row.order_id, charged->charge_id,
                         row.order.total_amount.cents());
        return orders::events::payment_captured{charged->charge_id};
      case gateway_outcome::declined:
        return orders::events::payment_declined{
            charged->decline_code.empty()
                ? charged->message
                : fmt::format("{}: {}", charged->decline_code, charged->message)};
      case gateway_outcome::unavailable:
        // The gateway is known to be down: wait for it without using up an attempt.
        engine_.schedule_retry(
            tx, name, row.order_id, message, retry, earlier_failures, "gateway_unavailable",
            charged->message,
            orders::with_jitter(policy, charged->retry_after, saga::step_engine::unit_random()));
        step.outcome = "retry_scheduled";
        return std::nullopt;
      case gateway_outcome::transient_failure:
        break;
    }
    const int failures = earlier_failures + 1;
    if (auto delay = orders::retry_delay(policy, failures, saga::step_engine::unit_random())) {
      engine_.schedule_retry(tx, name, row.order_id, message, retry, failures, "transient",
                             charged->message, *delay);
      step.outcome = "retry_scheduled";
      return std::nullopt;
    }
    orders::failed_message failed{
        name,     row.order_id, &message, orders::error_retries_exhausted, charged->message,
        failures, std::nullopt};
    if (retry)
      failed.first_failure_at = retry->first_failure_at;
    engine_.dead_letters().park(tx, failed);
    return orders::events::payment_failed{
        fmt::format("payment gateway failed {} times: {}", failures, charged->message)};
  };
  co_await engine_.run_step(name, message, effect, retry);
}

}  // namespace op::payments
