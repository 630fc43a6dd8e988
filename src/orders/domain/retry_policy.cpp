#include "orders/domain/retry_policy.hpp"

#include <algorithm>
#include <cmath>

namespace op::orders {

std::chrono::milliseconds with_jitter(const retry_policy& policy, std::chrono::milliseconds delay,
                                      double unit_random) {
  double factor = 1.0 + policy.jitter * (2.0 * std::clamp(unit_random, 0.0, 1.0) - 1.0);
  return std::chrono::milliseconds(
      std::llround(static_cast<double>(delay.count()) * std::max(0.0, factor)));
}

std::optional<std::chrono::milliseconds> retry_delay(const retry_policy& policy, int failures,
                                                     double unit_random) {
  if (failures < 1 || failures > policy.max_retries)
    return std::nullopt;
  // Growth stops after 20 steps: far beyond any sensible retry count already, and a day at
  // most, so the delay cannot overflow.
  auto steps = std::min(failures - 1, 20);
  auto delay = static_cast<double>(policy.base_delay.count()) *
               std::pow(std::max(1.0, policy.multiplier), steps);
  delay = std::min(delay, 86'400'000.0);
  return with_jitter(policy, std::chrono::milliseconds(std::llround(delay)), unit_random);
}

}  // namespace op::orders
