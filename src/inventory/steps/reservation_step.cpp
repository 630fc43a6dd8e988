#include "inventory/steps/reservation_step.hpp"

#include <fmt/format.h>

#include <map>
#include <optional>
#include <string>

#include "inventory/steps/product_reads.hpp"
#include "platform/pg/array.hpp"

namespace op::inventory {

namespace {

const char* to_string(stock_changes::kind change) {
  switch (change) {
    case stock_changes::kind::reserve:
      return "reserve";
    case stock_changes::kind::release:
      return "release";
    case stock_changes::kind::commit:
      return "commit";
  }
  return "unknown";
}

}  // namespace

void prepare_reservation_statements(pqxx::connection& c) {
  product_reads::prepare_statements(c);
  // Changes the stock of every product of the orders $1 by the changes $2 (reserve, release,
  // commit) in one statement, and answers whether every product row was changed: a
  // reservation only changes a row that has enough available. It takes the products' stock
  // locks first (the one-time filter on stock_locks runs before the update scans anything);
  // the update then changes the newest version of each row.
  c.prepare("saga_stock",
            "WITH wanted AS (SELECT i.product_id,"
            " sum(CASE c.kind WHEN 'reserve' THEN -i.quantity WHEN 'release' THEN i.quantity"
            " ELSE 0 END)::bigint AS to_available,"
            " sum(CASE c.kind WHEN 'reserve' THEN i.quantity ELSE -i.quantity END)::bigint"
            " AS to_reserved,"
            " sum(CASE c.kind WHEN 'commit' THEN i.quantity ELSE 0 END)::bigint AS to_sold"
            " FROM unnest($1::text[], $2::text[]) AS c(order_id, kind)"
            " JOIN orders o USING (order_id) CROSS JOIN LATERAL unnest(o.items) AS i"
            " GROUP BY i.product_id), " +
                product_reads::stock_locks("ARRAY(SELECT product_id FROM wanted)") +
                ", known AS (SELECT product_id FROM products WHERE product_id IN"
                " (SELECT product_id FROM wanted)),"
                " changed AS (UPDATE products p SET available = p.available + w.to_available,"
                " reserved = p.reserved + w.to_reserved, sold = p.sold + w.to_sold,"
                " updated_at = now() FROM wanted w WHERE p.product_id = w.product_id"
                " AND p.available + w.to_available >= 0"
                " AND (SELECT count(*) FROM stock_locks) >= 0 RETURNING 1)"
                " SELECT (SELECT count(*) FROM changed) = (SELECT count(*) FROM known)");
}

void stock_changes::before_commit(pqxx::work& tx) {
  if (changes_.empty())
    return;
  std::vector<std::string_view> order_ids, kinds;
  for (const auto& [order_id, change] : changes_) {
    order_ids.push_back(order_id);
    kinds.push_back(to_string(change));
  }
  if (!tx.exec_prepared1("saga_stock", pg::text_array(order_ids), pg::text_array(kinds))[0]
           .as<bool>())
    throw order_pipeline::decide_again_under_lock("not enough stock without a lock");
}

namespace {

// All items or none. Usually a plain read shows enough stock and the reservation is taken at
// the commit (stock_changes). Otherwise the products are read again locked and out of stock
// is decided under the lock.
order_pipeline::decision reserve(order_pipeline::step_context& context) {
  if (!context.awaited())
    return order_pipeline::decision::proceed();  // the saga refuses it, logged
  const auto& order = context.current_order();
  std::map<std::string, std::int64_t> wanted;
  for (const auto& item : order.items)
    wanted[item.product_id] += item.quantity;
  auto& products = context.shared<product_reads>();
  auto shortage = [&]() -> std::optional<std::string> {
    for (const auto& [product_id, quantity] : wanted) {
      const auto* product = products.find(product_id);
      auto available = product ? product->available : 0;
      if (available < quantity)
        return fmt::format("product {}: {} wanted, {} available", product_id, quantity, available);
    }
    return std::nullopt;
  };
  auto missing = shortage();
  if (missing && !products.locked()) {
    products.lock();
    missing = shortage();
  }
  if (missing)
    return order_pipeline::decision::reject(std::string(out_of_stock_reason), *missing);
  for (const auto& [product_id, quantity] : wanted)
    products.take(product_id, quantity);
  context.shared<stock_changes>().add(order.id, stock_changes::kind::reserve);
  return order_pipeline::decision::proceed();
}

}  // namespace

order_pipeline::step reservation_step() {
  order_pipeline::step step;
  step.name = "reserve";
  step.event_type = "InventoryReserved";
  step.status = "INVENTORY_RESERVED";
  step.action = reserve;
  step.compensation = [](order_pipeline::step_context& context) {
    context.shared<stock_changes>().add(context.current_order().id, stock_changes::kind::release);
  };
  step.finalizer = [](order_pipeline::step_context& context) {
    context.shared<stock_changes>().add(context.current_order().id, stock_changes::kind::commit);
  };
  step.timeout_reason = "RESERVATION_TIMEOUT";
  step.rejection_reasons = {std::string(out_of_stock_reason)};
  return step;
}

}  // namespace op::inventory
