#pragma once
// When a transiently failing saga step runs again: exponential backoff with jitter, as the
// seed configures it (app.retry.max-attempts retries, app.retry.backoff-delay doubling: 1 s,
// 2 s, 4 s; a step may set its own multiplier). Pure: the random draw is an argument, so tests need
// no randomness.

#include <chrono>
#include <optional>

namespace op::orders {

struct retry_policy {
  int max_retries = 3;  // runs after the first failure; 0: give up at once
  std::chrono::milliseconds base_delay{1000};
  double jitter = 0.2;      // each delay is stretched or shrunk by up to this fraction
  double multiplier = 2.0;  // each delay is this many times the one before
};

// The delay before the next run after `failures` failed runs (1 for the first failure), with
// `unit_random` drawn uniformly from [0, 1); nullopt once the retries are used up.
std::optional<std::chrono::milliseconds> retry_delay(const retry_policy& policy, int failures,
                                                     double unit_random);

// `delay` spread by the policy's jitter, for waits not counted as failures (an open circuit).
std::chrono::milliseconds with_jitter(const retry_policy& policy, std::chrono::milliseconds delay,
                                      double unit_random);

}  // namespace op::orders
