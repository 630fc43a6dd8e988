#pragma once
// PostgreSQL implementation of product_repository. Calls block; thread-safe.

#include "inventory/app/ports.hpp"
#include "platform/pg/connection_pool.hpp"

namespace op::inventory {

class pg_product_repository final : public product_repository {
 public:
  explicit pg_product_repository(pg::connection_pool& pool) : pool_(pool) {}
  static void prepare_statements(pqxx::connection& connection);

  product upsert(const product_update& update) override;
  std::optional<product> find(const std::string& product_id) override;

 private:
  pg::connection_pool& pool_;
};

}  // namespace op::inventory
