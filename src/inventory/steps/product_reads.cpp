#include "inventory/steps/product_reads.hpp"

#include <fmt/format.h>

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

std::string product_reads::stock_locks(std::string_view product_ids) {
  // Ordered by the lock's key, not the product id: two ids with the same hash are then one
  // lock, taken at one place in the order. The sorted subquery (OFFSET 0 keeps it apart)
  // feeds the lock calls in its order.
  return fmt::format(
      "stock_locks AS (SELECT pg_advisory_xact_lock(hashtext('order-pipeline.stock'), key)"
      " FROM (SELECT DISTINCT hashtext(id) AS key FROM unnest({}) AS p(id) ORDER BY key"
      " OFFSET 0) keys)",
      product_ids);
}

void product_reads::prepare_statements(pqxx::connection& c) {
  c.prepare("saga_read_products",
            "SELECT product_id, price_cents, active, available FROM products"
            " WHERE product_id = ANY($1::text[]) ORDER BY product_id");
  // FOR UPDATE still: it reads the newest stock of each row after the locks were taken.
  c.prepare("saga_lock_products",
            "WITH " + stock_locks("$1::text[]") +
                " SELECT product_id, price_cents, active, available FROM products"
                " WHERE product_id = ANY($1::text[]) AND (SELECT count(*) FROM stock_locks) >= 0"
                " ORDER BY product_id FOR UPDATE");
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
