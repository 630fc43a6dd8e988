#include "orders/domain/order_saga_definition.hpp"

#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace op::orders {

namespace {

// g++ 12 warns on designated initializers that leave members to their defaults, hence setters.
saga::step_definition step(std::string name, std::string status, std::string timeout_reason) {
  saga::step_definition out;
  out.name = std::move(name);
  out.status = std::move(status);
  out.timeout_reason = std::move(timeout_reason);
  return out;
}

saga::saga_definition build() {
  saga::step_definition reserve = step("reserve", "INVENTORY_RESERVED", "RESERVATION_TIMEOUT");
  reserve.has_compensation = true;  // release the reservation
  reserve.has_finalizer = true;     // turn it into a sale
  saga::step_definition pay = step("pay", "PAYMENT_PROCESSED", "PAYMENT_TIMEOUT");
  pay.has_compensation = true;  // refund, by order id
  pay.may_land_late = true;     // a gateway call given up on may still capture
  pay.failure_reason = "PAYMENT_FAILED";
  auto result = saga::saga_definition::make({
      step("validate", "VALIDATED", "VALIDATION_TIMEOUT"),
      std::move(reserve),
      std::move(pay),
      step("confirm", "CONFIRMED", "CONFIRMATION_TIMEOUT"),
  });
  // The list above is fixed at compile time; the unit tests build it, so this never fires.
  if (auto* definition = std::get_if<saga::saga_definition>(&result))
    return std::move(*definition);
  std::abort();
}

}  // namespace

const saga::saga_definition& order_saga_definition() {
  static const saga::saga_definition definition = build();
  return definition;
}

}  // namespace op::orders
