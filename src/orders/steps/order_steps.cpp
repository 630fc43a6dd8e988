#include "orders/steps/order_steps.hpp"

#include <fmt/format.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "inventory/steps/product_reads.hpp"
#include "orders/domain/money.hpp"
#include "platform/pg/array.hpp"

namespace op::orders {

namespace {

// Whether each customer of a transaction's orders is active (an unknown one is absent), read
// once for all of them.
class customer_reads final : public order_pipeline::transaction_part {
 public:
  explicit customer_reads(order_pipeline::step_context& context) {
    std::vector<std::string_view> ids;
    for (const auto* order : context.transaction_orders())
      ids.push_back(order->customer_id);
    for (const auto& r : context.transaction().exec_prepared("saga_customers", pg::text_array(ids)))
      active_[r[0].as<std::string>()] = r[1].as<bool>();
  }

  const std::map<std::string, bool>& active() const { return active_; }

 private:
  std::map<std::string, bool> active_;
};

// Empty when the order may go on; what is wrong otherwise.
std::string validation_problem(order_pipeline::step_context& context) {
  const auto& order = context.current_order();
  const auto& customers = context.shared<customer_reads>().active();
  auto customer = customers.find(order.customer_id);
  if (customer == customers.end())
    return fmt::format("customer {} does not exist", order.customer_id);
  if (!customer->second)
    return fmt::format("customer {} is not active", order.customer_id);
  auto& products = context.shared<inventory::product_reads>();
  std::int64_t sum = 0;
  for (std::size_t line = 0; line < order.items.size(); ++line) {
    const auto& item = order.items[line];
    const auto* product = products.find(item.product_id);
    if (!product)
      return fmt::format("product {} does not exist", item.product_id);
    if (!product->active)
      return fmt::format("product {} is not active", item.product_id);
    auto price = item.price_cents;
    if (price != product->price_cents)
      return fmt::format("items[{}].price {} differs from the catalog price {} of {}", line,
                         money::from_cents(price).to_string(),
                         money::from_cents(product->price_cents).to_string(), item.product_id);
    sum += item.quantity * price;
  }
  if (sum != order.total_cents)
    return fmt::format("totalAmount {} differs from the sum of the items {}",
                       money::from_cents(order.total_cents).to_string(),
                       money::from_cents(sum).to_string());
  return {};
}

}  // namespace

void prepare_order_step_statements(pqxx::connection& c) {
  c.prepare("saga_customers",
            "SELECT customer_id, active FROM customers WHERE customer_id = ANY($1::text[])");
}

order_pipeline::step validation_step() {
  order_pipeline::step step;
  step.name = "validate";
  step.event_type = "OrderValidated";
  step.status = "VALIDATED";
  step.action = [](order_pipeline::step_context& context) {
    if (!context.awaited())
      return order_pipeline::decision::proceed();  // the saga refuses it, logged
    auto problem = validation_problem(context);
    if (problem.empty())
      return order_pipeline::decision::proceed();
    return order_pipeline::decision::reject(std::string(validation_failed_reason), problem);
  };
  step.timeout_reason = "VALIDATION_TIMEOUT";
  step.rejection_reasons = {std::string(validation_failed_reason)};
  return step;
}

order_pipeline::step confirmation_step() {
  order_pipeline::step step;
  step.name = "confirm";
  step.event_type = "OrderConfirmed";
  step.status = "CONFIRMED";
  // Confirming decides nothing of its own: its success completes the saga, whose finalizers
  // (the reservation's sale) run in the same transaction.
  step.action = [](order_pipeline::step_context&) { return order_pipeline::decision::proceed(); };
  step.timeout_reason = "CONFIRMATION_TIMEOUT";
  return step;
}

}  // namespace op::orders
