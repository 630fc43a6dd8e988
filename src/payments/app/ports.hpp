#pragma once
// What the payment use cases need from the outside world. The payment stage talks to a
// gateway only through payment_gateway; adapters/ holds the HTTP implementation and
// test/support the fakes.

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

#include "platform/runtime/asio.hpp"

namespace op::payments {

struct charge_request {
  // Declared constructors keep this from being an aggregate: g++ 12 miscompiles a braced
  // aggregate with std::string members passed by value inside a co_await expression
  // (`co_await gateway.charge({id, cents, method})` frees a string it never allocated).
  charge_request() = default;
  charge_request(std::string order_id, std::int64_t amount_cents, std::string payment_method)
      : order_id(std::move(order_id)),
        amount_cents(amount_cents),
        payment_method(std::move(payment_method)) {}

  std::string order_id;
  std::int64_t amount_cents = 0;
  std::string payment_method;  // a gateway token such as "pm_card_visa"
};

// transient_failure means "we do not know yet": the charge may be retried later with the
// same order id and cannot be taken twice, because implementations key every call on it.
// unavailable means the call was not even tried because the gateway is known to be down (an
// open circuit breaker); retry_after says when trying again makes sense.
enum class gateway_outcome { approved, declined, transient_failure, unavailable };

struct charge_result {
  gateway_outcome outcome = gateway_outcome::transient_failure;
  std::string charge_id;                     // when approved
  std::string decline_code;                  // when declined, e.g. "insufficient_funds"
  std::string message;                       // human-readable detail for logs and the saga's reason
  std::chrono::milliseconds retry_after{0};  // when unavailable
};

struct refund_result {
  gateway_outcome outcome = gateway_outcome::transient_failure;
  std::int64_t refunded_cents = 0;  // 0 when the order had nothing to refund
  std::string message;
  std::chrono::milliseconds retry_after{0};  // when unavailable
};

// Implementations must be safe to call concurrently from many coroutines on any executor.
class payment_gateway {
 public:
  virtual ~payment_gateway() = default;

  // Charges an order at most once, however often it is called for that order.
  virtual asio::awaitable<charge_result> charge(charge_request request) = 0;

  // Refunds the order's charge in full; a refund of an order never charged is an approved
  // no-op, so a compensating refund is always safe to send.
  virtual asio::awaitable<refund_result> refund(std::string order_id) = 0;
};

}  // namespace op::payments
