#include "payments/adapters/circuit_breaking_gateway.hpp"

#include <fmt/format.h>

#include "platform/log/logging.hpp"
#include "platform/metrics/registry.hpp"

namespace op::payments {

namespace {

using breaker = resilience::circuit_breaker;
using steady_clock = std::chrono::steady_clock;

// Resilience4j's spelling, which operators know from Spring services.
const char* upper_case(breaker::state s) {
  switch (s) {
    case breaker::state::closed:
      return "CLOSED";
    case breaker::state::open:
      return "OPEN";
    case breaker::state::half_open:
      return "HALF_OPEN";
  }
  return "UNKNOWN";
}

bool counts_as_success(gateway_outcome outcome) {
  return outcome == gateway_outcome::approved || outcome == gateway_outcome::declined;
}

metrics::counter& calls_counter(const std::string& name, const char* outcome) {
  return metrics::global().get_counter(
      "circuit_breaker_calls_total",
      "Calls through a circuit breaker: success, failure, or rejected without being made.",
      {{"name", name}, {"outcome", outcome}});
}

breaker::transition_listener log_transitions(std::string name, breaker::settings settings) {
  return [name = std::move(name), settings](breaker::state from, breaker::state to,
                                            const breaker::snapshot& after) {
    auto logger = log::get("payments");
    if (to == breaker::state::open && from == breaker::state::half_open)
      logger->warn(
          "circuit breaker {} OPEN again: a trial call failed; calls are rejected for {} ms", name,
          settings.open_duration.count());
    else if (to == breaker::state::open)
      logger->warn(
          "circuit breaker {} OPEN: {} of the last {} calls failed ({:.0f}%); calls are rejected "
          "for {} ms",
          name, after.failed_calls, after.buffered_calls, after.failure_rate,
          settings.open_duration.count());
    else if (to == breaker::state::half_open)
      logger->info("circuit breaker {} HALF_OPEN: admitting {} trial call(s)", name,
                   settings.half_open_calls);
    else
      logger->info("circuit breaker {} CLOSED: {} trial call(s) succeeded", name,
                   settings.half_open_calls);
  };
}

// Reports one admitted call to the breaker exactly once. A call that ends without an outcome
// (the inner gateway threw, or the coroutine was destroyed at shutdown) is a failure, so a
// half-open trial permit is never lost.
class admitted_call {
 public:
  admitted_call(breaker& b, breaker::decision admitted, metrics::counter& successes,
                metrics::counter& failures)
      : breaker_(b), admitted_(admitted), successes_(successes), failures_(failures) {}
  ~admitted_call() {
    if (!reported_)
      report(false);
  }
  admitted_call(const admitted_call&) = delete;
  admitted_call& operator=(const admitted_call&) = delete;

  void report(bool succeeded) {
    reported_ = true;
    if (succeeded) {
      successes_.inc();
      breaker_.on_success(admitted_, steady_clock::now());
    } else {
      failures_.inc();
      breaker_.on_failure(admitted_, steady_clock::now());
    }
  }

 private:
  breaker& breaker_;
  const breaker::decision admitted_;
  metrics::counter& successes_;
  metrics::counter& failures_;
  bool reported_ = false;
};

std::string rejection_message(const breaker::decision& rejected) {
  return fmt::format("payment gateway circuit open: call not attempted, retry after {} ms",
                     rejected.retry_after.count());
}

}  // namespace

circuit_breaking_gateway::circuit_breaking_gateway(payment_gateway& inner,
                                                   breaker::settings settings, std::string name)
    : inner_(inner),
      name_(std::move(name)),
      breaker_(std::make_shared<breaker>(settings, log_transitions(name_, settings))),
      successes_(calls_counter(name_, "success")),
      failures_(calls_counter(name_, "failure")),
      rejections_(calls_counter(name_, "rejected")) {
  std::weak_ptr<const breaker> weak = breaker_;
  for (auto s : {breaker::state::closed, breaker::state::open, breaker::state::half_open})
    metrics::global().add_callback(
        "circuit_breaker_state", "Circuit breaker state: 1 for the current one, 0 for the others.",
        {{"name", name_}, {"state", std::string(to_string(s))}}, [weak, s] {
          auto b = weak.lock();
          return b && b->current(steady_clock::now()) == s ? 1.0 : 0.0;
        });
}

asio::awaitable<charge_result> circuit_breaking_gateway::charge(charge_request request) {
  auto decision = breaker_->try_acquire(steady_clock::now());
  if (!decision.allowed) {
    rejections_.inc();
    log::get("payments")
        ->debug("charge of order {} not sent: circuit {} open", request.order_id, name_);
    charge_result out;
    out.outcome = gateway_outcome::unavailable;
    out.message = rejection_message(decision);
    out.retry_after = decision.retry_after;
    co_return out;
  }
  admitted_call call(*breaker_, decision, successes_, failures_);
  charge_result result = co_await inner_.charge(std::move(request));
  call.report(counts_as_success(result.outcome));
  co_return result;
}

asio::awaitable<refund_result> circuit_breaking_gateway::refund(std::string order_id) {
  auto decision = breaker_->try_acquire(steady_clock::now());
  if (!decision.allowed) {
    rejections_.inc();
    log::get("payments")->debug("refund of order {} not sent: circuit {} open", order_id, name_);
    refund_result out;
    out.outcome = gateway_outcome::unavailable;
    out.message = rejection_message(decision);
    out.retry_after = decision.retry_after;
    co_return out;
  }
  admitted_call call(*breaker_, decision, successes_, failures_);
  refund_result result = co_await inner_.refund(std::move(order_id));
  call.report(counts_as_success(result.outcome));
  co_return result;
}

resilience::circuit_breaker::snapshot circuit_breaking_gateway::stats() const {
  return breaker_->stats(steady_clock::now());
}

runtime::health_monitor::report circuit_breaking_gateway::health() const {
  auto s = stats();
  runtime::health_monitor::report out;
  out.status = s.current == breaker::state::closed ? "UP"
               : s.current == breaker::state::open ? "CIRCUIT_OPEN"
                                                   : "CIRCUIT_HALF_OPEN";
  out.details = {
      {"circuitBreaker", std::string(upper_case(s.current))},
      {"failureRate", fmt::format("{:.1f}%", s.failure_rate)},
      {"bufferedCalls", std::int64_t{s.buffered_calls}},
      {"failedCalls", std::int64_t{s.failed_calls}},
      {"notPermittedCalls", static_cast<std::int64_t>(s.rejected)},
  };
  return out;
}

}  // namespace op::payments
