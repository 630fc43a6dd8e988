#pragma once
// Spring Boot Actuator-style health endpoints for load balancers and Kubernetes probes:
//   GET /api/orders/health             the seed's plain-text liveness answer
//   GET /actuator/health               overall status with the db and kafka components
//                                      and the informational ones (paymentGateway)
//   GET /actuator/health/liveness      UP while the process serves requests
//   GET /actuator/health/readiness     UP when every probed component is UP and the server
//                                      is neither starting nor draining; 503 otherwise
// Informational components never change the overall status or readiness.
// /api/orders/health belongs to the public API: a worker replica without it (with_api false)
// answers it 404 like any /api/* path, and is probed on /actuator/health/*.

#include <functional>
#include <optional>
#include <string>

#include "platform/http/router.hpp"
#include "platform/runtime/health_monitor.hpp"

namespace op::http {

// nullopt when the server itself is ready for traffic, else why not (starting, draining).
using readiness_gate = std::function<std::optional<std::string>()>;

void add_health_routes(router& routes, const runtime::health_monitor& monitor, readiness_gate gate,
                       bool with_api = true);

}  // namespace op::http
