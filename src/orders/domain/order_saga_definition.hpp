#pragma once
// The built-in order saga as a declared step list for the generic saga machine: validate,
// reserve, pay, confirm. The statuses and reasons are the public API's strings (order_status.hpp).
// Built once, then read-only: any thread may read it.

#include "saga/domain/saga_definition.hpp"

namespace op::orders {

// validate -> VALIDATED; reserve -> INVENTORY_RESERVED, released on compensation and sold by its
// finalizer; pay -> PAYMENT_PROCESSED, refunded on compensation, may land late, PAYMENT_FAILED
// when its retries run out; confirm -> CONFIRMED. Each step's deadline cancels with its
// <STEP>_TIMEOUT reason.
const saga::saga_definition& order_saga_definition();

}  // namespace op::orders
