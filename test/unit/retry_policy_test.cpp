#include "orders/domain/retry_policy.hpp"

#include <catch2/catch.hpp>

using namespace op::orders;
using std::chrono::milliseconds;

TEST_CASE("retries follow the seed's 1 s, 2 s, 4 s and then stop", "[retry]") {
  retry_policy policy{3, milliseconds(1000), 0.2};
  // A draw of 0.5 is the middle of the jitter range: no stretch at all.
  CHECK(retry_delay(policy, 1, 0.5) == milliseconds(1000));
  CHECK(retry_delay(policy, 2, 0.5) == milliseconds(2000));
  CHECK(retry_delay(policy, 3, 0.5) == milliseconds(4000));
  CHECK_FALSE(retry_delay(policy, 4, 0.5).has_value());
}

TEST_CASE("jitter spreads a delay by at most its fraction", "[retry]") {
  retry_policy policy{3, milliseconds(1000), 0.2};
  CHECK(retry_delay(policy, 1, 0.0) == milliseconds(800));
  CHECK(retry_delay(policy, 1, 0.999999) == milliseconds(1200));
  CHECK(retry_delay(policy, 2, 0.25) == milliseconds(1800));
  CHECK(with_jitter(policy, milliseconds(5000), 0.75) == milliseconds(5500));
}

TEST_CASE("a step's own multiplier sets how fast its delays grow", "[retry]") {
  retry_policy policy{5, milliseconds(200), 0.0, 3.0};
  CHECK(retry_delay(policy, 1, 0.5) == milliseconds(200));
  CHECK(retry_delay(policy, 2, 0.5) == milliseconds(600));
  CHECK(retry_delay(policy, 5, 0.5) == milliseconds(16200));
  CHECK_FALSE(retry_delay(policy, 6, 0.5).has_value());
  // A multiplier below 1 would shrink the delays: it is taken as 1 (a constant delay).
  policy.multiplier = 0.5;
  CHECK(retry_delay(policy, 4, 0.5) == milliseconds(200));
}

TEST_CASE("no retries configured gives up on the first failure", "[retry]") {
  retry_policy policy{0, milliseconds(1000), 0.2};
  CHECK_FALSE(retry_delay(policy, 1, 0.5).has_value());
  CHECK_FALSE(retry_delay(policy, 0, 0.5).has_value());
}

TEST_CASE("a zero base delay retries at once", "[retry]") {
  retry_policy policy{2, milliseconds(0), 0.2};
  CHECK(retry_delay(policy, 2, 0.9) == milliseconds(0));
}
