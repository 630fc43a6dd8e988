#include "payments/steps/payment_step.hpp"

#include <fmt/format.h>

#include <any>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "platform/pg/array.hpp"

namespace op::payments {

void prepare_payment_statements(pqxx::connection& c) {
  // A capture that arrives after a deadline or a cancel already asked for a refund fills in
  // the amount, and makes a refund that waits to look again for a late charge due now.
  c.prepare("saga_record_payments",
            "INSERT INTO payments (order_id, charge_id, amount_cents)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])"
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

void payment_records::add(std::string order_id, std::string charge_id, std::int64_t amount_cents) {
  order_ids_.push_back(std::move(order_id));
  charge_ids_.push_back(std::move(charge_id));
  amounts_cents_.push_back(amount_cents);
}

void payment_records::write(pqxx::work& tx) {
  if (order_ids_.empty())
    return;
  // An order is in a transaction once: the engine runs its step only while the saga waits for
  // it, so no row is written twice by the statement.
  const std::vector<std::string_view> order_ids(order_ids_.begin(), order_ids_.end());
  const std::vector<std::string_view> charge_ids(charge_ids_.begin(), charge_ids_.end());
  tx.exec_prepared("saga_record_payments", pg::text_array(order_ids), pg::text_array(charge_ids),
                   pg::integer_array(amounts_cents_));
  order_ids_.clear();
  charge_ids_.clear();
  amounts_cents_.clear();
}

bool refund_requested(pqxx::work& tx, const std::string& order_id) {
  return !tx.exec_prepared("saga_refund_requested", order_id).empty();
}

order_pipeline::step payment_step(payment_gateway& gateway) {
  order_pipeline::step step;
  step.name = "pay";
  step.event_type = "PaymentProcessed";
  step.status = "PAYMENT_PROCESSED";
  // A duplicate that slips through is still charged once: the gateway call is idempotent by
  // order id.
  step.prepare = [&gateway](const order_pipeline::order& order) -> asio::awaitable<std::any> {
    auto result =
        co_await gateway.charge(charge_request{order.id, order.total_cents, order.payment_method});
    co_return std::any(std::move(result));
  };
  step.action = [](order_pipeline::step_context& context) {
    const auto& charged = std::any_cast<const charge_result&>(context.prepared());
    const auto& order = context.current_order();
    switch (charged.outcome) {
      case gateway_outcome::approved:
        context.shared<payment_records>().add(order.id, charged.charge_id, order.total_cents);
        return order_pipeline::decision::proceed();
      case gateway_outcome::declined:
        return order_pipeline::decision::reject(
            std::string(payment_declined_reason),
            charged.decline_code.empty()
                ? charged.message
                : fmt::format("{}: {}", charged.decline_code, charged.message));
      case gateway_outcome::unavailable:
        return order_pipeline::decision::wait_for(charged.retry_after, charged.message);
      case gateway_outcome::transient_failure:
        break;
    }
    return order_pipeline::decision::retry_later("payment gateway: " + charged.message);
  };
  // By order id, idempotent: refunding nothing is a no-op at the gateway.
  step.compensation = [](order_pipeline::step_context& context) {
    // A success refused in this transaction (its saga was cancelled meanwhile) has its payment
    // here: written first, its refund finds the charge.
    context.shared<payment_records>().write(context.transaction());
    context.transaction().exec_prepared("saga_request_refund", context.current_order().id);
  };
  step.may_land_late = true;  // a call given up on may still capture
  step.compensation_completes_later = true;
  step.timeout_reason = "PAYMENT_TIMEOUT";
  step.failure_reason = std::string(payment_failed_reason);
  step.rejection_reasons = {std::string(payment_declined_reason)};
  return step;
}

}  // namespace op::payments
