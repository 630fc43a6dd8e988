#pragma once
// A saga as the engine locked and read it: its state, its order before the step, and how long
// it has been running.

#include <string>

#include "orders/app/ports.hpp"
#include "orders/domain/order_saga.hpp"

namespace op::saga {

struct saga_row {
  std::string order_id;
  orders::saga_state state;
  double age_seconds = 0;       // since the order was placed
  double step_age_seconds = 0;  // since the saga entered its current step
  std::string trace_id;
  orders::order_view order;  // as it was before this step, with its items
};

}  // namespace op::saga
