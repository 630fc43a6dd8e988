#pragma once
// A saga as the engine locked and read it: its state, its order before the step, and how long
// it has been running.

#include <string>

#include "order_pipeline/order.hpp"
#include "orders/app/ports.hpp"
#include "saga/domain/saga_machine.hpp"

namespace op::saga {

struct saga_row {
  std::string order_id;
  saga_state state;
  double age_seconds = 0;       // since the order was placed
  double step_age_seconds = 0;  // since the saga entered its current step
  std::string trace_id;
  orders::order_view order;  // as it was before this step, with its items
};

// The order as a step of the public API sees it.
inline order_pipeline::order to_public_order(const orders::order_view& view) {
  order_pipeline::order out;
  out.id = view.order_id;
  out.customer_id = view.customer_id;
  out.customer_email = view.customer_email;
  out.shipping_address = view.shipping_address;
  out.payment_method = view.payment_method;
  out.status = view.status;
  out.total_cents = view.total_amount.cents();
  out.created_at = view.created_at;
  for (const auto& item : view.items)
    out.items.push_back({item.product_id, item.product_name, item.quantity, item.price.cents()});
  return out;
}

}  // namespace op::saga
