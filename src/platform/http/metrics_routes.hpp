#pragma once
// Metrics for operators and scrapers:
//   GET /metrics                              Prometheus text exposition format
//   GET /actuator/metrics                     {"names":[...]} in Spring Boot Actuator's shape
//   GET /actuator/metrics/kafka.consumer.lag  {"name","measurements","availableTags"},
//                                             ?tag=topic:orders.placed narrows it down

#include <functional>
#include <string>
#include <vector>

#include "platform/http/router.hpp"
#include "platform/metrics/registry.hpp"

namespace op::http {

struct lag_sample {
  std::string topic;
  int partition;
  double lag;
};

void add_metrics_routes(router& routes, const metrics::registry& registry,
                        std::function<std::vector<lag_sample>()> consumer_lag);

}  // namespace op::http
