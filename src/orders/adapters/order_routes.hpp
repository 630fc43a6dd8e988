#pragma once
// The orders HTTP API:
//   POST /api/orders                 place an order (Idempotency-Key honoured)
//   GET  /api/orders/{id}            one order; ?waitFor=final&timeoutMs= waits for its end
//   POST /api/orders/{id}/cancel     cancel it (CANCELLED/CUSTOMER_CANCELLED) unless it ended
//   GET  /api/orders/{id}/events     its status history
//   GET  /api/orders?customerId=&status=&limit=   newest first, bounded
//   GET  /api/admin/metrics          order count per status        (admin token)
//   PUT/GET /api/admin/customers/{id}                                (admin token)

#include "orders/app/ports.hpp"
#include "orders/domain/order_rules.hpp"
#include "platform/http/router.hpp"
#include "platform/runtime/waiter_registry.hpp"

namespace op::orders {

struct order_routes_context {
  order_repository& orders;
  customer_repository& customers;
  asio::thread_pool& blocking;
  order_limits limits;
  std::string admin_token;
  order_cancellation& cancellation;
  // GET /api/orders/{id}?waitFor=final: woken by the outcome listener on any replica.
  runtime::waiter_registry& waiters;
  // POST /api/orders being placed at once, at most; more answer 503 (0: no limit).
  std::size_t max_pending_orders = 0;
};

void add_order_routes(http::router& routes, const order_routes_context& context);

}  // namespace op::orders
