#include "orders/steps/order_steps.hpp"

#include <fmt/format.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "inventory/steps/product_reads.hpp"
#include "platform/pg/array.hpp"

namespace op::orders {

namespace {

// Whether each customer of a transaction's orders is active (an unknown one is absent), read
// once for all of them.
class customer_reads final : public saga::transaction_part {
 public:
  explicit customer_reads(saga::transaction_scope& scope) {
    std::vector<std::string_view> ids;
    for (const auto* row : scope.rows())
      ids.push_back(row->order.customer_id);
    for (const auto& r : scope.tx().exec_prepared("saga_customers", pg::text_array(ids)))
      active_[r[0].as<std::string>()] = r[1].as<bool>();
  }

  const std::map<std::string, bool>& active() const { return active_; }

 private:
  std::map<std::string, bool> active_;
};

// Empty when the order may go on; what is wrong otherwise.
std::string validation_problem(const order_view& order, saga::transaction_scope& scope) {
  const auto& customers = scope.part<customer_reads>().active();
  auto customer = customers.find(order.customer_id);
  if (customer == customers.end())
    return fmt::format("customer {} does not exist", order.customer_id);
  if (!customer->second)
    return fmt::format("customer {} is not active", order.customer_id);
  auto& products = scope.part<inventory::product_reads>();
  std::int64_t sum = 0;
  for (std::size_t line = 0; line < order.items.size(); ++line) {
    const auto& item = order.items[line];
    const auto* product = products.find(item.product_id);
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

}  // namespace

void prepare_order_step_statements(pqxx::connection& c) {
  c.prepare("saga_customers",
            "SELECT customer_id, active FROM customers WHERE customer_id = ANY($1::text[])");
}

saga::step_effect validation() {
  return [](const saga::saga_row& row, saga::step_context& step) -> std::optional<saga_event> {
    if (row.state.status != order_status::placed)
      return events::validation_passed{};  // the saga refuses it, logged
    auto problem = validation_problem(row.order, step.scope);
    if (problem.empty())
      return events::validation_passed{};
    return events::validation_failed{problem};
  };
}

saga::step_effect confirmation() {
  return [](const saga::saga_row&, saga::step_context&) -> std::optional<saga_event> {
    return events::order_confirmed{};
  };
}

}  // namespace op::orders
