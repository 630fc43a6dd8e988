#pragma once
// payment_gateway behind a circuit breaker: while the gateway keeps failing, calls are not
// sent at all but answered at once as `unavailable` with a retry_after, so a gateway outage
// costs neither the gateway nor our stages a full retry loop per order.
//
// approved and declined count as successes (a decline is the gateway's business answer),
// transient_failure (and an exception) as a failure. The breaker is shared by charges and
// refunds: both go to the same gateway.
//
// Metrics, labelled name="<name>": circuit_breaker_state{state} is 1 for the current state and
// 0 for the others; circuit_breaker_calls_total{outcome="success"|"failure"|"rejected"}.
// State changes are logged by logger "payments" (opening at WARN, the others at INFO).
// Thread-safe like the gateway it wraps, which must outlive it.

#include <memory>
#include <string>

#include "payments/app/ports.hpp"
#include "platform/resilience/circuit_breaker.hpp"
#include "platform/runtime/health_monitor.hpp"

namespace op::metrics {
class counter;
}

namespace op::payments {

class circuit_breaking_gateway : public payment_gateway {
 public:
  // Throws std::invalid_argument for settings the breaker refuses.
  circuit_breaking_gateway(payment_gateway& inner, resilience::circuit_breaker::settings settings,
                           std::string name = "payment_gateway");
  circuit_breaking_gateway(const circuit_breaking_gateway&) = delete;
  circuit_breaking_gateway& operator=(const circuit_breaking_gateway&) = delete;

  asio::awaitable<charge_result> charge(charge_request request) override;
  asio::awaitable<refund_result> refund(std::string order_id) override;

  resilience::circuit_breaker::snapshot stats() const;
  // For /actuator/health, in the shape of Resilience4j's health indicator: status "UP",
  // "CIRCUIT_OPEN" or "CIRCUIT_HALF_OPEN", details circuitBreaker "CLOSED"|"OPEN"|"HALF_OPEN".
  runtime::health_monitor::report health() const;

 private:
  payment_gateway& inner_;
  const std::string name_;
  // Shared with the state gauges' callbacks, which outlive this object in the registry.
  std::shared_ptr<resilience::circuit_breaker> breaker_;
  metrics::counter& successes_;
  metrics::counter& failures_;
  metrics::counter& rejections_;
};

}  // namespace op::payments
