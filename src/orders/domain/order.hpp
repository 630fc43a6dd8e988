#pragma once
// An order as the shop submits it, after its JSON has been read into typed fields but before
// any rule is checked. The rules live in order_rules.hpp.

#include <optional>
#include <string>
#include <vector>

#include "orders/domain/money.hpp"

namespace op::orders {

struct order_item {
  std::string product_id;
  std::string product_name;
  std::int64_t quantity = 0;
  money price;
};

struct order_draft {
  std::string customer_id;
  std::string customer_email;  // optional: empty when absent
  std::string shipping_address;
  std::string payment_method;  // optional: empty means the default test card
  money total_amount;
  std::vector<order_item> items;
};

// The payment method an order without one is charged with.
inline constexpr std::string_view default_payment_method = "pm_card_visa";

}  // namespace op::orders
