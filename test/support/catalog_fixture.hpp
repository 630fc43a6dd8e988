#pragma once
// Puts customers and products into a running server through its admin API, as an operator
// would, and reads stock back.

#include <cstdint>
#include <string>

namespace op::test {

inline const std::string test_admin_token = "test-admin-token";

void put_customer(unsigned short port, const std::string& id, const std::string& email,
                  bool active = true);
void put_product(unsigned short port, const std::string& id, const std::string& name,
                 const std::string& price, std::int64_t stock, bool active = true);

struct stock_levels {
  std::int64_t available = 0;
  std::int64_t reserved = 0;
  std::int64_t sold = 0;
};
stock_levels get_stock(unsigned short port, const std::string& product_id);

// A field of a flat JSON object as text ("PLACED", "199.99"); empty when absent.
std::string json_field(const std::string& json, const std::string& name);

}  // namespace op::test
