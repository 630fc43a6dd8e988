#pragma once
// Reads the figures the dashboard shows from this process's metrics registry, in-process
// (never by parsing /metrics): a few map lookups under the registry's lock, once per
// interval, and nothing on the message path.

#include <array>
#include <cstdint>

#include "dashboard/dashboard_snapshot.hpp"
#include "platform/metrics/registry.hpp"

namespace op::dashboard {

// `consumer_lag` is per stage, in the order of stage_names.
metrics_reading read_metrics(const metrics::registry& registry,
                             const std::array<double, stage_names.size()>& consumer_lag,
                             std::int64_t now_unix_ms);

}  // namespace op::dashboard
