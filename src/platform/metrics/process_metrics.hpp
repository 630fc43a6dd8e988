#pragma once
// Registers the process's own gauges: resident memory, threads, start time, uptime
// (read from /proc when scraped).

#include "platform/metrics/registry.hpp"

namespace op::metrics {

void register_process_metrics(registry& r);

}  // namespace op::metrics
