#include "platform/resilience/circuit_breaker.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace op::resilience {

namespace {

using std::chrono::milliseconds;

circuit_breaker::settings checked(circuit_breaker::settings s) {
  auto require = [](bool ok, const char* what) {
    if (!ok)
      throw std::invalid_argument(std::string("circuit breaker: ") + what);
  };
  require(s.failure_rate_threshold >= 1 && s.failure_rate_threshold <= 100,
          "failure_rate_threshold must be 1..100");
  require(s.sliding_window_size >= 1, "sliding_window_size must be at least 1");
  require(s.minimum_calls >= 1, "minimum_calls must be at least 1");
  require(s.open_duration > milliseconds(0), "open_duration must be positive");
  require(s.half_open_calls >= 1, "half_open_calls must be at least 1");
  s.minimum_calls = std::min(s.minimum_calls, s.sliding_window_size);
  return s;
}

// Rounded up, so a caller that waits retry_after finds the breaker past its wait.
milliseconds until(circuit_breaker::time_point deadline, circuit_breaker::time_point now) {
  return std::max(milliseconds(1), std::chrono::ceil<milliseconds>(deadline - now));
}

}  // namespace

circuit_breaker::circuit_breaker(settings s, transition_listener on_transition)
    : settings_(checked(s)),
      on_transition_(std::move(on_transition)),
      window_(static_cast<std::size_t>(settings_.sliding_window_size)) {}

circuit_breaker::decision circuit_breaker::try_acquire(time_point now) {
  std::lock_guard lock(mutex_);
  if (state_ == state::open && now >= open_until_)
    transition_locked(state::half_open, now);
  switch (state_) {
    case state::closed:
      return {true, milliseconds(0), generation_};
    case state::half_open:
      if (trials_admitted_ < settings_.half_open_calls) {
        ++trials_admitted_;
        return {true, milliseconds(0), generation_};
      }
      // The trials' outcomes decide; if one fails the breaker stays open this long.
      ++rejected_;
      return {false, settings_.open_duration, generation_};
    case state::open:
      break;
  }
  ++rejected_;
  return {false, until(open_until_, now), generation_};
}

void circuit_breaker::on_success(const decision& admitted, time_point now) {
  std::lock_guard lock(mutex_);
  if (!admitted.allowed || admitted.generation != generation_)
    return;
  if (state_ == state::closed) {
    record_locked(false);
    open_if_over_threshold_locked(now);  // a success can complete the minimum calls
  } else if (state_ == state::half_open) {
    record_locked(false);
    if (++trials_succeeded_ == settings_.half_open_calls)
      transition_locked(state::closed, now);
  }
}

void circuit_breaker::on_failure(const decision& admitted, time_point now) {
  std::lock_guard lock(mutex_);
  if (!admitted.allowed || admitted.generation != generation_)
    return;
  if (state_ == state::closed) {
    record_locked(true);
    open_if_over_threshold_locked(now);
  } else if (state_ == state::half_open) {
    record_locked(true);
    transition_locked(state::open, now);
  }
}

circuit_breaker::state circuit_breaker::current(time_point now) const {
  std::lock_guard lock(mutex_);
  return effective_locked(now);
}

circuit_breaker::snapshot circuit_breaker::stats(time_point now) const {
  std::lock_guard lock(mutex_);
  return stats_locked(now);
}

void circuit_breaker::record_locked(bool failed) {
  if (recorded_ == settings_.sliding_window_size)
    failures_ -= window_[next_] ? 1 : 0;
  else
    ++recorded_;
  window_[next_] = failed;
  failures_ += failed ? 1 : 0;
  next_ = (next_ + 1) % window_.size();
}

void circuit_breaker::open_if_over_threshold_locked(time_point now) {
  if (recorded_ >= settings_.minimum_calls &&
      failures_ * 100 >= settings_.failure_rate_threshold * recorded_)
    transition_locked(state::open, now);
}

void circuit_breaker::transition_locked(state to, time_point now) {
  state from = state_;
  state_ = to;
  ++generation_;
  trials_admitted_ = 0;
  trials_succeeded_ = 0;
  if (to == state::open) {
    // The window stays as it was, so stats() shows the failure rate that opened it.
    open_until_ = now + settings_.open_duration;
  } else {
    std::fill(window_.begin(), window_.end(), false);
    next_ = 0;
    recorded_ = 0;
    failures_ = 0;
  }
  if (on_transition_)
    on_transition_(from, to, stats_locked(now));
}

circuit_breaker::state circuit_breaker::effective_locked(time_point now) const {
  if (state_ == state::open && now >= open_until_)
    return state::half_open;
  return state_;
}

circuit_breaker::snapshot circuit_breaker::stats_locked(time_point now) const {
  snapshot out;
  out.current = effective_locked(now);
  out.buffered_calls = recorded_;
  out.failed_calls = failures_;
  if (recorded_ >= settings_.minimum_calls)
    out.failure_rate = 100.0 * failures_ / recorded_;
  out.rejected = rejected_;
  return out;
}

std::string_view to_string(circuit_breaker::state s) {
  switch (s) {
    case circuit_breaker::state::closed:
      return "closed";
    case circuit_breaker::state::open:
      return "open";
    case circuit_breaker::state::half_open:
      return "half_open";
  }
  return "unknown";
}

}  // namespace op::resilience
