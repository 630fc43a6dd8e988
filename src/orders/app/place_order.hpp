#pragma once
// The place-order use case: check the order's rules, give it an id, and store it with its
// saga and OrderPlaced event in one transaction, honouring an Idempotency-Key.

#include <optional>
#include <string>
#include <vector>

#include "orders/app/ports.hpp"
#include "orders/domain/order_rules.hpp"

namespace op::orders {

// Renders what the use case hands to the outside: the client's answer.
class order_presenter {
 public:
  virtual ~order_presenter() = default;
  virtual std::string accepted_response(const std::string& order_id) const = 0;
};

struct place_order_result {
  enum class kind { accepted, replayed, invalid, idempotency_key_reused } outcome;
  std::vector<violation> violations;
  std::string order_id;
  std::string response_body;
};

place_order_result place_order(order_repository& orders, const order_presenter& presenter,
                               const order_limits& limits, order_draft draft,
                               const std::optional<idempotency>& key, std::string trace_id);

}  // namespace op::orders
