#pragma once
// The operators' view of the dead-letter queue, behind the admin Bearer token:
//   GET  /api/admin/dlq?stage=&status=&after=&limit=   entries, oldest first, paged by id
//   GET  /api/admin/dlq/{id}                           one entry with its payload and headers
//   POST /api/admin/dlq/{id}/replay                    re-inject it now (repeating it is harmless)
//   POST /api/admin/dlq/replay?stage=&limit=           queue parked entries for a rate-limited
//                                                      replay; 202 with how many

#include <string>

#include "orders/adapters/dead_letters.hpp"
#include "platform/http/router.hpp"
#include "platform/pg/connection_pool.hpp"

namespace op::orders {

struct dlq_routes_context {
  const dead_letter_queue& dead_letters;
  pg::connection_pool& pool;
  asio::thread_pool& blocking;
  std::string admin_token;
  int replay_rate = 50;
};

void add_dlq_routes(http::router& routes, const dlq_routes_context& context);

}  // namespace op::orders
