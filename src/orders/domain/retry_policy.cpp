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
  // Doubling stops at 2^20 times the base: far beyond any sensible retry count already.
  auto doubling = std::min(failures - 1, 20);
  return with_jitter(policy, policy.base_delay * (1LL << doubling), unit_random);
}

}  // namespace op::orders
