// http_payment_gateway against the real payment-gateway-simulator binary, started on a free
// port for each test and killed at its end. Outcomes are read back from the simulator's
// ledger (charges, cents), the way an operator would check a real gateway's dashboard.
// Needs neither PostgreSQL nor Kafka.

#include <catch2/catch.hpp>
#include <future>
#include <thread>
#include <vector>

#include "payments/adapters/http_payment_gateway.hpp"
#include "platform/runtime/asio.hpp"
#include "support/simulator_process.hpp"
#include "support/test_environment.hpp"

using namespace op;
using namespace std::chrono_literals;
using payments::gateway_outcome;

namespace {

// A simulator, a multi-threaded io_context like the server's, and the client under test.
struct gateway_fixture {
  explicit gateway_fixture(std::chrono::milliseconds timeout = 2000ms, int max_retries = 2)
      : gateway(ioc, simulator.url(), timeout, max_retries) {
    for (int i = 0; i < 4; ++i)
      threads.emplace_back([this] { ioc.run(); });
  }
  ~gateway_fixture() {
    work.reset();
    for (auto& thread : threads)
      thread.join();
  }

  template <class T>
  std::future<T> start(asio::awaitable<T> call) {
    return asio::co_spawn(ioc, std::move(call), asio::use_future);
  }
  template <class T>
  T run(asio::awaitable<T> call) {
    return start(std::move(call)).get();
  }
  payments::charge_result charge(const std::string& order_id, std::int64_t cents,
                                 const std::string& payment_method = "pm_card_visa") {
    return run(gateway.charge({order_id, cents, payment_method}));
  }
  payments::refund_result refund(const std::string& order_id) {
    return run(gateway.refund(order_id));
  }

  test::simulator_process simulator;
  asio::io_context ioc;
  asio::executor_work_guard<asio::io_context::executor_type> work{ioc.get_executor()};
  payments::http_payment_gateway gateway;
  std::vector<std::thread> threads;
};

template <class Work>
std::chrono::milliseconds time_of(Work work) {
  auto start = std::chrono::steady_clock::now();
  work();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start);
}

}  // namespace

TEST_CASE("an approved charge is captured at the gateway", "[payments]") {
  gateway_fixture fx;

  auto result = fx.charge("order-1", 1234);

  CHECK(result.outcome == gateway_outcome::approved);
  CHECK(result.charge_id.rfind("ch_", 0) == 0);
  CHECK(fx.simulator.order("order-1", "charges") == 1);
  CHECK(fx.simulator.order("order-1", "capturedCents") == 1234);
  CHECK(fx.simulator.stats("capturedCents") == 1234);
}

TEST_CASE("declined cards come back with the gateway's decline code", "[payments]") {
  gateway_fixture fx;
  struct card {
    std::string payment_method;
    std::string decline_code;
  };
  const std::vector<card> cards = {
      {"pm_card_chargeDeclined", "generic_decline"},
      {"pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"},
      {"pm_card_doesNotExist", "invalid_payment_method"},
  };

  for (const auto& [payment_method, decline_code] : cards) {
    INFO(payment_method);
    auto result = fx.charge("order-" + payment_method, 500, payment_method);
    CHECK(result.outcome == gateway_outcome::declined);
    CHECK(result.decline_code == decline_code);
    CHECK_FALSE(result.message.empty());
    CHECK(result.charge_id.empty());
  }
  CHECK(fx.simulator.stats("charges") == 0);
  CHECK(fx.simulator.stats("capturedCents") == 0);
}

TEST_CASE("an order charged again, even concurrently, is charged once", "[payments]") {
  gateway_fixture fx;

  auto first = fx.charge("order-twice", 2500);
  auto second = fx.charge("order-twice", 2500);
  REQUIRE(first.outcome == gateway_outcome::approved);
  CHECK(second.outcome == gateway_outcome::approved);
  CHECK(second.charge_id == first.charge_id);
  CHECK(fx.simulator.order("order-twice", "charges") == 1);
  CHECK(fx.simulator.order("order-twice", "chargeAttempts") == 2);

  // Called from coroutines with a braced request, the way stage code calls the port.
  auto charge_from_coroutine = [&fx]() -> asio::awaitable<payments::charge_result> {
    payments::charge_request request{"order-concurrent", 990, "pm_card_visa"};
    co_return co_await fx.gateway.charge(std::move(request));
  };
  std::vector<std::future<payments::charge_result>> calls;
  for (int i = 0; i < 20; ++i)
    calls.push_back(asio::co_spawn(fx.ioc, charge_from_coroutine, asio::use_future));
  std::vector<payments::charge_result> results;
  for (auto& call : calls)
    results.push_back(call.get());

  for (const auto& result : results) {
    CHECK(result.outcome == gateway_outcome::approved);
    CHECK(result.charge_id == results.front().charge_id);
  }
  CHECK(fx.simulator.order("order-concurrent", "chargeAttempts") == 20);
  CHECK(fx.simulator.order("order-concurrent", "charges") == 1);
  CHECK(fx.simulator.order("order-concurrent", "capturedCents") == 990);
  CHECK(fx.simulator.stats("charges") == 2);
  CHECK(fx.simulator.stats("capturedCents") == 2500 + 990);
}

TEST_CASE("an order is refunded once, and a refund without a charge is a no-op", "[payments]") {
  gateway_fixture fx;
  REQUIRE(fx.charge("order-refund", 5000).outcome == gateway_outcome::approved);

  auto first = fx.refund("order-refund");
  auto second = fx.refund("order-refund");

  CHECK(first.outcome == gateway_outcome::approved);
  CHECK(first.refunded_cents == 5000);
  CHECK(second.outcome == gateway_outcome::approved);
  CHECK(fx.simulator.order("order-refund", "refundedCents") == 5000);
  CHECK(fx.simulator.stats("refunds") == 1);
  CHECK(fx.simulator.stats("refundedCents") == 5000);

  auto nothing = fx.refund("order-never-charged");
  CHECK(nothing.outcome == gateway_outcome::approved);
  CHECK(nothing.refunded_cents == 0);
  CHECK(fx.simulator.stats("refunds") == 1);
  CHECK(fx.simulator.stats("refundedCents") == 5000);
}

TEST_CASE("during an outage a charge is retried max-retries times, then reported transient",
          "[payments]") {
  const int max_retries = 3;
  gateway_fixture fx(2000ms, max_retries);
  fx.simulator.control(R"({"outage":true})");

  payments::charge_result during;
  auto elapsed = time_of([&] { during = fx.charge("order-outage", 700); });

  CHECK(during.outcome == gateway_outcome::transient_failure);
  CHECK_FALSE(during.message.empty());
  CHECK(elapsed >= 50ms + 100ms + 200ms);  // the backoff between the four attempts

  fx.simulator.control(R"({"outage":false})");
  CHECK(fx.simulator.order("order-outage", "chargeAttempts") == 1 + max_retries);
  CHECK(fx.simulator.order("order-outage", "charges") == 0);

  auto after = fx.charge("order-outage", 700);
  CHECK(after.outcome == gateway_outcome::approved);
  CHECK(fx.simulator.order("order-outage", "charges") == 1);
  CHECK(fx.simulator.order("order-outage", "capturedCents") == 700);
}

TEST_CASE("a gateway slower than the client's timeout is a transient failure", "[payments]") {
  gateway_fixture fx(200ms, 1);
  fx.simulator.control(R"({"timeoutMs":1500})");

  payments::charge_result slow;
  auto elapsed = time_of([&] { slow = fx.charge("order-slow", 1800); });

  CHECK(slow.outcome == gateway_outcome::transient_failure);
  CHECK(elapsed < 1000ms);  // two attempts of 200 ms and a backoff, not the gateway's 1.5 s

  // The gateway took the charge even though its answer never arrived in time: asking again
  // once it is fast gets that charge back instead of a second one.
  fx.simulator.control(R"({"timeoutMs":0})");
  auto retried = fx.charge("order-slow", 1800);
  CHECK(retried.outcome == gateway_outcome::approved);
  CHECK(fx.simulator.order("order-slow", "charges") == 1);
  CHECK(fx.simulator.order("order-slow", "capturedCents") == 1800);
}

TEST_CASE("a gateway failing every call charges nothing and the result is transient",
          "[payments]") {
  const int max_retries = 2;
  gateway_fixture fx(2000ms, max_retries);
  fx.simulator.control(R"({"failureRate":1.0})");

  auto charge = fx.charge("order-failing", 300);
  auto refund = fx.refund("order-failing");

  CHECK(charge.outcome == gateway_outcome::transient_failure);
  CHECK(refund.outcome == gateway_outcome::transient_failure);
  CHECK(fx.simulator.order("order-failing", "chargeAttempts") == 1 + max_retries);
  CHECK(fx.simulator.stats("charges") == 0);
  CHECK(fx.simulator.stats("capturedCents") == 0);
  CHECK(fx.simulator.stats("refunds") == 0);
}

TEST_CASE("an unreachable gateway is a transient failure", "[payments]") {
  asio::io_context ioc;
  payments::http_payment_gateway gateway(
      ioc, "http://127.0.0.1:" + std::to_string(test::free_port()), 500ms, 1);
  auto result =
      asio::co_spawn(ioc, gateway.charge({"order-nowhere", 100, "pm_card_visa"}), asio::use_future);
  ioc.run();

  auto charge = result.get();
  CHECK(charge.outcome == gateway_outcome::transient_failure);
  CHECK(charge.message.find("connection failed") != std::string::npos);
}
