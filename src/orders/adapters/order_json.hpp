#pragma once
// The JSON shapes of the orders API: reading a placement request (numbers are read as their
// decimal text, never through double) and writing orders, histories and counts.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "orders/app/ports.hpp"
#include "orders/domain/order_rules.hpp"
#include "platform/json/json_body.hpp"

namespace op::orders {

struct draft_parse_result {
  std::optional<order_draft> draft;  // set when the JSON had the right shape and types
  std::vector<violation> errors;     // type errors, each naming its field
  // Set when the body could not be read at all: not a JSON object, a duplicate key, U+0000.
  std::optional<json::body_problem> refused;
};

draft_parse_result parse_order_draft(std::string_view body);

std::string order_json(const order_view& order);
std::string order_list_json(const std::vector<order_view>& orders);
std::string history_json(const std::string& order_id, const std::vector<order_event_view>& events);
std::string status_counts_json(const std::vector<status_count>& counts);

// The answer to a successful POST /api/orders.
std::string placement_json(const std::string& order_id, std::string_view status);

}  // namespace op::orders
