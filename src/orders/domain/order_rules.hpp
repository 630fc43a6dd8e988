#pragma once
// The rules an order must satisfy to be accepted at the door: presence, sane lengths,
// quantities, item count. Catalog rules (customer and product exist, prices and total match
// the catalog) are checked later by the validation stage, which sees the database.

#include <string>
#include <vector>

#include "orders/domain/order.hpp"

namespace op::orders {

struct order_limits {
  int max_quantity = 1000;
  int max_items = 100;
};

// One broken rule: the JSON path of the field and the rule, e.g.
// {"items[0].quantity", "must be at most 1000"}.
struct violation {
  std::string field;
  std::string rule;
};

inline constexpr std::size_t max_id_length = 64;
inline constexpr std::size_t max_email_length = 254;
inline constexpr std::size_t max_name_length = 200;
inline constexpr std::size_t max_address_length = 500;
inline constexpr std::size_t max_payment_method_length = 100;

// Every rule `draft` breaks, in field order; empty when the order may be accepted.
std::vector<violation> check(const order_draft& draft, const order_limits& limits);

// An address of the form local@domain.tld without spaces; deliberately not RFC 5322 in full.
bool looks_like_email(std::string_view text);

// Ids are 1..64 characters of [A-Za-z0-9._:-].
bool is_valid_id(std::string_view text);

// Characters (Unicode code points) in valid UTF-8 `text`: limits are stated in characters,
// and "é" is one character though two bytes.
std::size_t character_count(std::string_view text);

}  // namespace op::orders
