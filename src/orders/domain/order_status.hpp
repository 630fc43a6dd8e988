#pragma once
// Where an order stands, and why a cancelled order stopped. The upper-case names are the
// status and reason strings of the public API and of the saga table: never rename them.

#include <array>
#include <optional>
#include <string_view>

namespace op::orders {

enum class order_status {
  placed,
  validated,
  inventory_reserved,
  payment_processed,
  confirmed,
  cancelled,
  failed,
};

inline constexpr std::array<order_status, 7> all_order_statuses = {
    order_status::placed,
    order_status::validated,
    order_status::inventory_reserved,
    order_status::payment_processed,
    order_status::confirmed,
    order_status::cancelled,
    order_status::failed,
};

// "PLACED", "INVENTORY_RESERVED", ...
std::string_view to_string(order_status status);

// The exact inverse of to_string (case-sensitive, as stored); nullopt for anything else.
std::optional<order_status> parse_order_status(std::string_view text);

// The saga has ended: no step runs any more and no deadline applies.
constexpr bool is_terminal(order_status status) {
  return status == order_status::confirmed || status == order_status::cancelled ||
         status == order_status::failed;
}

enum class cancel_reason {
  validation_failed,
  out_of_stock,
  payment_declined,  // any card decline, insufficient funds included; the detail says which
  payment_failed,    // the gateway kept failing until the retries ran out
  payment_timeout,
  confirmation_timeout,
  validation_timeout,
  reservation_timeout,
  customer_cancelled,  // POST /api/orders/{id}/cancel before the order was confirmed
};

inline constexpr std::array<cancel_reason, 9> all_cancel_reasons = {
    cancel_reason::validation_failed,  cancel_reason::out_of_stock,
    cancel_reason::payment_declined,   cancel_reason::payment_failed,
    cancel_reason::payment_timeout,    cancel_reason::confirmation_timeout,
    cancel_reason::validation_timeout, cancel_reason::reservation_timeout,
    cancel_reason::customer_cancelled,
};

// "OUT_OF_STOCK", "PAYMENT_DECLINED", ...
std::string_view to_string(cancel_reason reason);

// The exact inverse of to_string (case-sensitive, as stored); nullopt for anything else.
std::optional<cancel_reason> parse_cancel_reason(std::string_view text);

}  // namespace op::orders
