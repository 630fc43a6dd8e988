#pragma once
// What the inventory use cases need from storage. Stock is three counters that always add
// up to what was stocked: available + reserved + sold.

#include <cstdint>
#include <optional>
#include <string>

#include "orders/domain/money.hpp"

namespace op::inventory {

struct product {
  std::string product_id;
  std::string name;
  orders::money price;
  bool active = true;
  std::int64_t available = 0;
  std::int64_t reserved = 0;
  std::int64_t sold = 0;
};

// What an operator sets with PUT /api/admin/products/{id}; `stock` becomes `available`.
struct product_update {
  std::string product_id;
  std::string name;
  orders::money price;
  std::int64_t stock = 0;
  bool active = true;
};

class product_repository {
 public:
  virtual ~product_repository() = default;
  virtual product upsert(const product_update& update) = 0;
  virtual std::optional<product> find(const std::string& product_id) = 0;
};

}  // namespace op::inventory
