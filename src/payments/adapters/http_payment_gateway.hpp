#pragma once
// payment_gateway over HTTP/1.1 to a card gateway with a Stripe-like API: POST /v1/charges
// and POST /v1/refunds, each with an Idempotency-Key ("charge-<orderId>", "refund-<orderId>")
// so that a retried or replayed call never charges or refunds twice. tools/
// payment_gateway_simulator speaks the same API.
//
// Every attempt has its own timeout, counted from when it has a connection. Connection errors,
// timeouts, 5xx, 408 and 429 are retried up to max_retries times with exponential backoff (50 ms,
// 100 ms, 200 ms, ... capped at 2 s) and then reported as transient_failure; 402 is a decline with
// the gateway's decline code; any other 4xx is a decline carrying the gateway's message.
//
// Connections are kept alive in a small pool (at most max_connections open; further callers
// wait without blocking a thread) and replaced when they fail. Thread-safe: any number of
// coroutines on any executor of `ioc` may call at once. Owned by the composition root, which
// must keep it alive until every call has returned.

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "payments/app/ports.hpp"
#include "platform/runtime/asio.hpp"

namespace op::payments {

class http_payment_gateway : public payment_gateway {
 public:
  // `base_url` is "http://host:port" with an optional path prefix; throws
  // std::invalid_argument for anything else (https is not supported).
  http_payment_gateway(asio::io_context& ioc, const std::string& base_url,
                       std::chrono::milliseconds timeout, int max_retries,
                       std::size_t max_connections = 64);
  ~http_payment_gateway() override;
  http_payment_gateway(const http_payment_gateway&) = delete;
  http_payment_gateway& operator=(const http_payment_gateway&) = delete;

  asio::awaitable<charge_result> charge(charge_request request) override;
  asio::awaitable<refund_result> refund(std::string order_id) override;

 private:
  class impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace op::payments
