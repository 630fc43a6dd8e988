#include "platform/resilience/circuit_breaker.hpp"

#include <catch2/catch.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using op::resilience::circuit_breaker;
using state = circuit_breaker::state;
using namespace std::chrono_literals;

namespace Catch {
template <>
struct StringMaker<state> {
  static std::string convert(state value) { return std::string(to_string(value)); }
};
}  // namespace Catch

namespace {

circuit_breaker::settings small_settings() {
  circuit_breaker::settings s;
  s.failure_rate_threshold = 50;
  s.sliding_window_size = 4;
  s.minimum_calls = 4;
  s.open_duration = 1000ms;
  s.half_open_calls = 2;
  return s;
}

// A breaker and a hand-driven clock.
struct fixture {
  explicit fixture(circuit_breaker::settings s = small_settings())
      : breaker(s, [this](state from, state to, const circuit_breaker::snapshot&) {
          transitions.emplace_back(from, to);
        }) {}

  // One admitted call with the given outcome; fails the test if it was rejected.
  void call(bool succeeds) {
    auto admitted = breaker.try_acquire(now);
    REQUIRE(admitted.allowed);
    if (succeeds)
      breaker.on_success(admitted, now);
    else
      breaker.on_failure(admitted, now);
  }
  void calls(std::initializer_list<bool> outcomes) {
    for (bool succeeds : outcomes)
      call(succeeds);
  }

  circuit_breaker::time_point now{std::chrono::hours(1)};
  std::vector<std::pair<state, state>> transitions;
  circuit_breaker breaker;
};

constexpr bool ok = true;
constexpr bool fail = false;

}  // namespace

TEST_CASE("a closed breaker stays closed until minimum calls are recorded", "[resilience]") {
  fixture fx;

  fx.calls({fail, fail, fail});  // 100% failures, but only 3 of the 4 minimum calls

  CHECK(fx.breaker.current(fx.now) == state::closed);
  CHECK(fx.breaker.stats(fx.now).failure_rate == -1);
  CHECK(fx.transitions.empty());
  fx.call(ok);  // 3 of 4 failed: 75% >= 50%
  CHECK(fx.breaker.current(fx.now) == state::open);
  REQUIRE(fx.transitions.size() == 1);
  CHECK(fx.transitions[0] == std::pair{state::closed, state::open});
}

TEST_CASE("the breaker opens exactly at the failure rate threshold, not below", "[resilience]") {
  fixture fx;

  fx.calls({ok, ok, ok, fail});  // 25%
  CHECK(fx.breaker.current(fx.now) == state::closed);
  CHECK(fx.breaker.stats(fx.now).failure_rate == 25.0);

  fx.call(fail);  // window ok, ok, fail, fail: 50%
  CHECK(fx.breaker.current(fx.now) == state::open);
  auto stats = fx.breaker.stats(fx.now);
  CHECK(stats.buffered_calls == 4);
  CHECK(stats.failed_calls == 2);
  CHECK(stats.failure_rate == 50.0);
}

TEST_CASE("a minimum above the window size counts as the window size", "[resilience]") {
  auto s = small_settings();
  s.minimum_calls = 100;
  fixture fx(s);

  fx.calls({fail, fail, fail, fail});

  CHECK(fx.breaker.current(fx.now) == state::open);
}

TEST_CASE("an open breaker rejects with the time left until the trial calls", "[resilience]") {
  fixture fx;
  fx.calls({fail, fail, fail, fail});
  REQUIRE(fx.breaker.current(fx.now) == state::open);

  auto first = fx.breaker.try_acquire(fx.now);
  CHECK_FALSE(first.allowed);
  CHECK(first.retry_after == 1000ms);

  fx.now += 400ms;
  auto later = fx.breaker.try_acquire(fx.now);
  CHECK_FALSE(later.allowed);
  CHECK(later.retry_after == 600ms);

  fx.now += 599ms + 500us;  // rounded up: waiting retry_after must be enough
  auto almost = fx.breaker.try_acquire(fx.now);
  CHECK_FALSE(almost.allowed);
  CHECK(almost.retry_after == 1ms);
  CHECK(fx.breaker.current(fx.now) == state::open);
  CHECK(fx.breaker.stats(fx.now).rejected == 3);
}

TEST_CASE("after the open duration exactly half_open_calls trials are admitted", "[resilience]") {
  fixture fx;
  fx.calls({fail, fail, fail, fail});
  fx.now += 1000ms;

  CHECK(fx.breaker.current(fx.now) == state::half_open);  // reported before the next call
  auto trial1 = fx.breaker.try_acquire(fx.now);
  auto trial2 = fx.breaker.try_acquire(fx.now);
  auto third = fx.breaker.try_acquire(fx.now);

  CHECK(trial1.allowed);
  CHECK(trial2.allowed);
  CHECK_FALSE(third.allowed);
  CHECK(third.retry_after == 1000ms);
  REQUIRE(fx.transitions.size() == 2);
  CHECK(fx.transitions[1] == std::pair{state::open, state::half_open});
}

TEST_CASE("a half-open breaker closes when all trials succeed, with an empty window",
          "[resilience]") {
  fixture fx;
  fx.calls({fail, fail, fail, fail});
  fx.now += 1000ms;
  auto trial1 = fx.breaker.try_acquire(fx.now);
  auto trial2 = fx.breaker.try_acquire(fx.now);
  REQUIRE((trial1.allowed && trial2.allowed));

  fx.breaker.on_success(trial1, fx.now);
  CHECK(fx.breaker.current(fx.now) == state::half_open);  // one trial still out
  fx.breaker.on_success(trial2, fx.now);

  CHECK(fx.breaker.current(fx.now) == state::closed);
  REQUIRE(fx.transitions.size() == 3);
  CHECK(fx.transitions[2] == std::pair{state::half_open, state::closed});
  auto stats = fx.breaker.stats(fx.now);
  CHECK(stats.buffered_calls == 0);
  CHECK(stats.failed_calls == 0);
  // The old failures are gone: three new failures are below the minimum again.
  fx.calls({fail, fail, fail});
  CHECK(fx.breaker.current(fx.now) == state::closed);
}

TEST_CASE("one failed trial opens the breaker again for the full open duration", "[resilience]") {
  fixture fx;
  fx.calls({fail, fail, fail, fail});
  fx.now += 1500ms;
  auto trial1 = fx.breaker.try_acquire(fx.now);
  auto trial2 = fx.breaker.try_acquire(fx.now);
  fx.breaker.on_success(trial1, fx.now);

  fx.now += 10ms;
  fx.breaker.on_failure(trial2, fx.now);

  CHECK(fx.breaker.current(fx.now) == state::open);
  auto rejected = fx.breaker.try_acquire(fx.now);
  CHECK_FALSE(rejected.allowed);
  CHECK(rejected.retry_after == 1000ms);
  REQUIRE(fx.transitions.size() == 3);
  CHECK(fx.transitions[2] == std::pair{state::half_open, state::open});
  fx.now += 1000ms;
  CHECK(fx.breaker.try_acquire(fx.now).allowed);
}

TEST_CASE("the window slides: outcomes older than the window are forgotten", "[resilience]") {
  fixture fx;

  fx.calls({fail, ok, ok, ok});  // 25%
  fx.calls({ok});                // the failure slides out: 0 of 4
  CHECK(fx.breaker.stats(fx.now).failed_calls == 0);
  fx.calls({fail});  // 1 of 4: 25%
  CHECK(fx.breaker.current(fx.now) == state::closed);
  fx.calls({ok, ok});  // ok, fail, ok, ok
  fx.calls({fail});    // fail, ok, ok, fail: 50% of the last four; 3 of all 9 calls is 33%
  CHECK(fx.breaker.current(fx.now) == state::open);
  CHECK(fx.breaker.stats(fx.now).buffered_calls == 4);
}

TEST_CASE("an outcome of a call admitted in an earlier state does not count", "[resilience]") {
  fixture fx;
  auto slow = fx.breaker.try_acquire(fx.now);  // admitted while closed, answers much later
  REQUIRE(slow.allowed);
  fx.calls({fail, fail, fail, fail});
  fx.now += 1000ms;
  auto trial1 = fx.breaker.try_acquire(fx.now);
  auto trial2 = fx.breaker.try_acquire(fx.now);

  fx.breaker.on_success(slow, fx.now);
  fx.breaker.on_success(trial1, fx.now);
  CHECK(fx.breaker.current(fx.now) == state::half_open);  // trial2 has not answered

  fx.breaker.on_success(trial2, fx.now);
  CHECK(fx.breaker.current(fx.now) == state::closed);
  // A rejected decision's outcome is ignored too.
  circuit_breaker::decision rejected;
  fx.breaker.on_failure(rejected, fx.now);
  CHECK(fx.breaker.stats(fx.now).buffered_calls == 0);
}

TEST_CASE("settings out of range are refused", "[resilience]") {
  auto s = small_settings();
  s.failure_rate_threshold = 0;
  CHECK_THROWS_AS(circuit_breaker(s), std::invalid_argument);
  s = small_settings();
  s.sliding_window_size = 0;
  CHECK_THROWS_AS(circuit_breaker(s), std::invalid_argument);
  s = small_settings();
  s.half_open_calls = 0;
  CHECK_THROWS_AS(circuit_breaker(s), std::invalid_argument);
  s = small_settings();
  s.open_duration = 0ms;
  CHECK_THROWS_AS(circuit_breaker(s), std::invalid_argument);
}
