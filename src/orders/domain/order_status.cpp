#include "orders/domain/order_status.hpp"

namespace op::orders {

std::string_view to_string(order_status status) {
  switch (status) {
    case order_status::placed:
      return "PLACED";
    case order_status::validated:
      return "VALIDATED";
    case order_status::inventory_reserved:
      return "INVENTORY_RESERVED";
    case order_status::payment_processed:
      return "PAYMENT_PROCESSED";
    case order_status::confirmed:
      return "CONFIRMED";
    case order_status::cancelled:
      return "CANCELLED";
    case order_status::failed:
      return "FAILED";
  }
  return "UNKNOWN";
}

std::optional<order_status> parse_order_status(std::string_view text) {
  for (order_status status : all_order_statuses) {
    if (to_string(status) == text)
      return status;
  }
  return std::nullopt;
}

std::string_view to_string(cancel_reason reason) {
  switch (reason) {
    case cancel_reason::validation_failed:
      return "VALIDATION_FAILED";
    case cancel_reason::out_of_stock:
      return "OUT_OF_STOCK";
    case cancel_reason::payment_declined:
      return "PAYMENT_DECLINED";
    case cancel_reason::payment_failed:
      return "PAYMENT_FAILED";
    case cancel_reason::payment_timeout:
      return "PAYMENT_TIMEOUT";
    case cancel_reason::confirmation_timeout:
      return "CONFIRMATION_TIMEOUT";
    case cancel_reason::validation_timeout:
      return "VALIDATION_TIMEOUT";
    case cancel_reason::reservation_timeout:
      return "RESERVATION_TIMEOUT";
    case cancel_reason::customer_cancelled:
      return "CUSTOMER_CANCELLED";
  }
  return "UNKNOWN";
}

std::optional<cancel_reason> parse_cancel_reason(std::string_view text) {
  for (cancel_reason reason : all_cancel_reasons) {
    if (to_string(reason) == text)
      return reason;
  }
  return std::nullopt;
}

}  // namespace op::orders
