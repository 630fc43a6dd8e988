#pragma once
// A count-based circuit breaker with Resilience4j's semantics, for a dependency that may go
// down for a while (the payment gateway):
//   closed     every call is admitted; the outcomes of the last sliding_window_size calls are
//              kept, and once at least minimum_calls are recorded a failure rate of
//              failure_rate_threshold percent or more opens the breaker.
//   open       every call is rejected, with how long until open_duration has passed.
//   half_open  exactly half_open_calls trial calls are admitted, the rest rejected; when all
//              trials succeed the breaker closes with an empty window, one failure opens it.
// Open turns half_open on the first call after open_duration; current() already reports it.
//
// Pure and thread-safe: one mutex, no threads, no I/O. The caller passes the time, so tests
// drive it without sleeping. Each admitted call must report exactly one outcome with the
// decision it got: an outcome admitted in an earlier state (a slow call that was admitted
// while closed and ends after the breaker opened) is ignored, so it cannot pass for a trial.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string_view>
#include <vector>

namespace op::resilience {

class circuit_breaker {
 public:
  using clock = std::chrono::steady_clock;
  using time_point = clock::time_point;

  enum class state { closed, open, half_open };

  struct settings {
    int failure_rate_threshold = 50;  // percent, 1..100
    int sliding_window_size = 20;
    int minimum_calls = 10;  // capped at sliding_window_size, as in Resilience4j
    std::chrono::milliseconds open_duration{10000};
    int half_open_calls = 3;
  };

  struct decision {
    bool allowed = false;
    std::chrono::milliseconds retry_after{0};  // when rejected: until trying again makes sense
    std::uint64_t generation = 0;              // the state period the call was admitted in
  };

  struct snapshot {
    state current = state::closed;
    int buffered_calls = 0;      // outcomes in the window (trials while half-open)
    int failed_calls = 0;        // failures among them
    double failure_rate = -1;    // percent; -1 until minimum_calls are recorded
    std::uint64_t rejected = 0;  // calls rejected since construction
  };

  // Called under the breaker's lock on every change of state, in order; it must not call
  // back into the breaker. `after` is the breaker as it is in the new state.
  using transition_listener = std::function<void(state from, state to, const snapshot& after)>;

  // Throws std::invalid_argument for settings out of range.
  explicit circuit_breaker(settings s, transition_listener on_transition = {});

  decision try_acquire(time_point now);
  void on_success(const decision& admitted, time_point now);
  void on_failure(const decision& admitted, time_point now);

  state current(time_point now) const;
  snapshot stats(time_point now) const;
  const settings& config() const { return settings_; }

 private:
  void record_locked(bool failed);
  void open_if_over_threshold_locked(time_point now);
  void transition_locked(state to, time_point now);
  state effective_locked(time_point now) const;
  snapshot stats_locked(time_point now) const;

  const settings settings_;
  const transition_listener on_transition_;

  mutable std::mutex mutex_;
  state state_ = state::closed;
  std::uint64_t generation_ = 0;
  // The closed window: a ring of the last outcomes, true for a failure.
  std::vector<bool> window_;
  std::size_t next_ = 0;
  int recorded_ = 0;
  int failures_ = 0;
  time_point open_until_{};
  int trials_admitted_ = 0;
  int trials_succeeded_ = 0;
  std::uint64_t rejected_ = 0;
};

std::string_view to_string(circuit_breaker::state s);

}  // namespace op::resilience
