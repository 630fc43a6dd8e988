#include "inventory/steps/product_reads.hpp"

#include <pqxx/pqxx>
#include <string_view>
#include <vector>

#include "platform/pg/array.hpp"

namespace op::inventory {

product_reads::product_reads(order_pipeline::step_context& context)
    : tx_(context.transaction()), locked_(context.under_lock()) {
  for (const auto* order : context.transaction_orders())
    for (const auto& item : order->items)
      product_ids_.push_back(item.product_id);
}

void product_reads::prepare_statements(pqxx::connection& c) {
  const std::string products =
      "SELECT product_id, price_cents, active, available FROM products"
      " WHERE product_id = ANY($1::text[]) ORDER BY product_id";
  c.prepare("saga_read_products", products);
  c.prepare("saga_lock_products", products + " FOR UPDATE");
}

const product_reads::product* product_reads::find(const std::string& product_id) {
  if (!products_)
    read();
  auto it = products_->find(product_id);
  return it == products_->end() ? nullptr : &it->second;
}

void product_reads::lock() {
  if (locked_ && products_)
    return;
  locked_ = true;
  read();
}

void product_reads::take(const std::string& product_id, std::int64_t quantity) {
  taken_[product_id] += quantity;
  if (products_)
    if (auto it = products_->find(product_id); it != products_->end())
      it->second.available -= quantity;
}

void product_reads::read() {
  products_.emplace();
  const std::vector<std::string_view> ids(product_ids_.begin(), product_ids_.end());
  for (const auto& r : tx_.exec_prepared(locked_ ? "saga_lock_products" : "saga_read_products",
                                         pg::text_array(ids))) {
    auto id = r[0].as<std::string>();
    auto taken = taken_.find(id);
    (*products_)[id] = {r[1].as<std::int64_t>(), r[2].as<bool>(),
                        r[3].as<std::int64_t>() - (taken == taken_.end() ? 0 : taken->second)};
  }
}

}  // namespace op::inventory
