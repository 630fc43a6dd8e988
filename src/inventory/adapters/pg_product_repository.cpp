#include "inventory/adapters/pg_product_repository.hpp"

namespace op::inventory {
namespace {
constexpr const char* product_columns =
    "product_id, name, price_cents, active, available, reserved, sold";

product read_product(const pqxx::row& r) {
  return {r[0].as<std::string>(),
          r[1].as<std::string>(),
          orders::money::from_cents(r[2].as<std::int64_t>()),
          r[3].as<bool>(),
          r[4].as<std::int64_t>(),
          r[5].as<std::int64_t>(),
          r[6].as<std::int64_t>()};
}
}  // namespace

void pg_product_repository::prepare_statements(pqxx::connection& c) {
  // Setting the stock sets what is available now; reserved and sold stay as they are, so
  // orders in flight keep their reservations.
  c.prepare("product_upsert",
            std::string("INSERT INTO products (product_id, name, price_cents, active, available)"
                        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (product_id) DO UPDATE SET"
                        " name = EXCLUDED.name, price_cents = EXCLUDED.price_cents,"
                        " active = EXCLUDED.active, available = EXCLUDED.available,"
                        " updated_at = now() RETURNING ") +
                product_columns);
  c.prepare("product_find",
            std::string("SELECT ") + product_columns + " FROM products WHERE product_id = $1");
}

product pg_product_repository::upsert(const product_update& u) {
  return pool_.with_connection([&](pqxx::connection& c) {
    pqxx::work tx(c);
    auto row = tx.exec_prepared1("product_upsert", u.product_id, u.name, u.price.cents(), u.active,
                                 u.stock);
    tx.commit();
    return read_product(row);
  });
}

std::optional<product> pg_product_repository::find(const std::string& product_id) {
  return pool_.with_connection([&](pqxx::connection& c) -> std::optional<product> {
    pqxx::work tx(c);
    auto rows = tx.exec_prepared("product_find", product_id);
    if (rows.empty())
      return std::nullopt;
    return read_product(rows[0]);
  });
}

}  // namespace op::inventory
