#include "screening_step.hpp"

#include <string>

namespace fraud_screening {
namespace {

using order_pipeline::decision;
using order_pipeline::step_context;

std::string amount(std::int64_t cents) {
  auto fraction = std::to_string(cents % 100);
  return std::to_string(cents / 100) + "." + (fraction.size() == 1 ? "0" : "") + fraction;
}

bool has_confirmed_order(pqxx::work& tx, const std::string& customer_id) {
  return tx
      .exec_params1(
          "SELECT EXISTS (SELECT 1 FROM orders WHERE customer_id = $1 AND status = "
          "'CONFIRMED')",
          customer_id)[0]
      .as<bool>();
}

decision screen_order(step_context& ctx, std::int64_t max_first_order_cents) {
  const auto& order = ctx.current_order();
  auto& tx = ctx.transaction();
  if (tx.exec1("SELECT reloading FROM fraud_risk_list_state")[0].as<bool>())
    return decision::retry_later("the fraud risk list is being reloaded");
  if (!tx.exec_params("SELECT 1 FROM fraud_risk_list WHERE customer_id = $1", order.customer_id)
           .empty())
    return decision::reject(fraud_suspected_reason, "the customer is on the fraud risk list");
  if (order.total_cents > max_first_order_cents && !has_confirmed_order(tx, order.customer_id))
    return decision::reject(fraud_suspected_reason, "a first order of " +
                                                        amount(order.total_cents) + " is above " +
                                                        amount(max_first_order_cents));
  // A late or repeated message is refused by the saga: record only a screening it counts.
  if (ctx.awaited())
    tx.exec_params(
        "INSERT INTO fraud_screenings (order_id, customer_id, total_cents) VALUES ($1, $2, $3)"
        " ON CONFLICT (order_id) DO NOTHING",
        order.id, order.customer_id, order.total_cents);
  return decision::proceed();
}

// Runs when the payment declines or fails, the customer cancels or a deadline passes after
// the screen passed the order. Idempotent, as the library requires.
void release_screening(step_context& ctx) {
  ctx.transaction().exec_params(
      "UPDATE fraud_screenings SET released_at = now() WHERE order_id = $1 AND released_at IS "
      "NULL",
      ctx.current_order().id);
}

}  // namespace

order_pipeline::step screening_step(const fraud_settings& settings) {
  order_pipeline::step screen;
  screen.name = "screen";
  screen.topic = "orders.screened";
  screen.event_type = "OrderScreened";
  // No status of its own: the orders API shows INVENTORY_RESERVED until the payment.
  screen.action = [limit = settings.max_first_order_cents](step_context& ctx) {
    return screen_order(ctx, limit);
  };
  screen.compensation = release_screening;
  screen.rejection_reasons = {fraud_suspected_reason};
  screen.failure_reason = screen_unavailable_reason;
  screen.retry = settings.screen_retry;
  return screen;
}

}  // namespace fraud_screening
