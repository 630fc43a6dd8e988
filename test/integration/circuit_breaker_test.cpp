// The payment gateway's circuit breaker against the real payment-gateway-simulator: a
// circuit_breaking_gateway over http_payment_gateway in this process, and the real server's
// /actuator/health and /metrics with the breaker opened by orders during an outage. That a
// rejected call never reached the gateway is read from the simulator's request counters.

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <future>
#include <pqxx/pqxx>
#include <sstream>
#include <thread>
#include <vector>

#include "payments/adapters/circuit_breaking_gateway.hpp"
#include "payments/adapters/http_payment_gateway.hpp"
#include "platform/metrics/registry.hpp"
#include "platform/runtime/asio.hpp"
#include "support/catalog_fixture.hpp"
#include "support/http_client.hpp"
#include "support/server_process.hpp"
#include "support/simulator_process.hpp"
#include "support/test_environment.hpp"

using namespace op;
using namespace std::chrono_literals;
using payments::gateway_outcome;
using state = resilience::circuit_breaker::state;

namespace Catch {
template <>
struct StringMaker<state> {
  static std::string convert(state value) { return std::string(to_string(value)); }
};
template <>
struct StringMaker<gateway_outcome> {
  static std::string convert(gateway_outcome value) {
    switch (value) {
      case gateway_outcome::approved:
        return "approved";
      case gateway_outcome::declined:
        return "declined";
      case gateway_outcome::transient_failure:
        return "transient_failure";
      case gateway_outcome::unavailable:
        return "unavailable";
    }
    return "?";
  }
};
}  // namespace Catch

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The value of one sample line ("name{labels} value"); -1 when absent.
double sample(const std::string& exposition, const std::string& series) {
  std::istringstream lines(exposition);
  std::string line;
  while (std::getline(lines, line))
    if (line.rfind(series + " ", 0) == 0)
      return std::stod(line.substr(series.size() + 1));
  return -1;
}

bool promtool_accepts(const std::string& exposition, const std::string& tag) {
  auto path = fmt::format("{}/metrics-breaker-{}.txt",
                          std::getenv("TEST_LOG_DIR") ? std::getenv("TEST_LOG_DIR") : "/tmp", tag);
  std::ofstream(path) << exposition;
  return std::system(fmt::format("promtool check metrics < '{}'", path).c_str()) == 0;
}

// The simulator, the HTTP client without retries (one call, one gateway request) and the
// breaker around it, on a multi-threaded io_context like the server's.
struct breaker_fixture {
  // `name` labels the metrics, which live on in the process registry after the test.
  breaker_fixture(resilience::circuit_breaker::settings settings, std::string name)
      : name(std::move(name)),
        http(ioc, simulator.url(), 2000ms, 0),
        gateway(http, settings, this->name) {
    for (int i = 0; i < 4; ++i)
      threads.emplace_back([this] { ioc.run(); });
  }
  ~breaker_fixture() {
    work.reset();
    for (auto& thread : threads)
      thread.join();
  }

  std::future<payments::charge_result> start_charge(const std::string& order_id) {
    auto call = [this, order_id]() -> asio::awaitable<payments::charge_result> {
      payments::charge_request request{order_id, 1000, "pm_card_visa"};
      co_return co_await gateway.charge(std::move(request));
    };
    return asio::co_spawn(ioc, std::move(call), asio::use_future);
  }
  payments::charge_result charge(const std::string& order_id) {
    return start_charge(order_id).get();
  }
  payments::refund_result refund(const std::string& order_id) {
    auto call = [this, order_id]() -> asio::awaitable<payments::refund_result> {
      std::string id = order_id;
      co_return co_await gateway.refund(std::move(id));
    };
    return asio::co_spawn(ioc, std::move(call), asio::use_future).get();
  }
  state current() const { return gateway.stats().current; }
  double metric(const std::string& metric_name, const std::string& label,
                const std::string& value) {
    return sample(metrics::global().expose(),
                  fmt::format(R"({}{{name="{}",{}="{}"}})", metric_name, name, label, value));
  }

  const std::string name;
  test::simulator_process simulator;
  asio::io_context ioc;
  asio::executor_work_guard<asio::io_context::executor_type> work{ioc.get_executor()};
  payments::http_payment_gateway http;
  payments::circuit_breaking_gateway gateway;
  std::vector<std::thread> threads;
};

}  // namespace

TEST_CASE("an outage opens the breaker, which then spares the gateway until trials close it",
          "[payments][circuit-breaker]") {
  resilience::circuit_breaker::settings settings;
  settings.failure_rate_threshold = 50;
  settings.sliding_window_size = 4;
  settings.minimum_calls = 4;
  settings.open_duration = 800ms;
  settings.half_open_calls = 2;
  breaker_fixture fx(settings, "it_outage");
  CHECK(fx.metric("circuit_breaker_state", "state", "closed") == 1);
  CHECK(fx.metric("circuit_breaker_state", "state", "open") == 0);
  CHECK(fx.metric("circuit_breaker_state", "state", "half_open") == 0);
  CHECK(fx.metric("circuit_breaker_calls_total", "outcome", "rejected") == 0);
  auto requests_before = fx.simulator.stats("requests");

  fx.simulator.control(R"({"outage":true})");
  for (int i = 0; i < 4; ++i) {
    INFO("call " << i);
    CHECK(fx.current() == state::closed);
    auto failed = fx.charge(fmt::format("cb-failed-{}", i));
    CHECK(failed.outcome == gateway_outcome::transient_failure);
  }
  CHECK(fx.current() == state::open);
  CHECK(fx.metric("circuit_breaker_state", "state", "open") == 1);
  CHECK(fx.metric("circuit_breaker_state", "state", "closed") == 0);

  payments::charge_result rejected;
  auto open_since = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) {
    rejected = fx.charge(fmt::format("cb-rejected-{}", i));
    CHECK(rejected.outcome == gateway_outcome::unavailable);
    CHECK(rejected.retry_after > 0ms);
    CHECK(rejected.retry_after <= 800ms);
    CHECK(contains(rejected.message, "circuit open"));
  }
  auto refund = fx.refund("cb-rejected-0");
  CHECK(refund.outcome == gateway_outcome::unavailable);
  CHECK(refund.retry_after > 0ms);
  CHECK(fx.gateway.stats().rejected == 6);
  CHECK(fx.metric("circuit_breaker_calls_total", "outcome", "failure") == 4);
  CHECK(fx.metric("circuit_breaker_calls_total", "outcome", "rejected") == 6);
  CHECK(fx.gateway.health().status == "CIRCUIT_OPEN");

  // Outage over, but the breaker waits out its open duration before it tries again.
  fx.simulator.control(R"({"outage":false})");
  // Four failed charges and this read reached the gateway; the six rejected calls did not.
  CHECK(fx.simulator.stats("requests") - requests_before == 4 + 1);
  CHECK(fx.simulator.order("cb-failed-0", "chargeAttempts") == 1);
  CHECK(fx.simulator.order("cb-rejected-0", "chargeAttempts") == 0);
  CHECK(fx.charge("cb-still-open").outcome == gateway_outcome::unavailable);

  std::this_thread::sleep_until(open_since + 800ms + 50ms);
  CHECK(fx.current() == state::half_open);
  // Slow answers keep both trials in flight while a third call arrives: it is rejected.
  fx.simulator.control(R"({"latencyMs":300})");
  std::vector<std::future<payments::charge_result>> calls;
  for (int i = 0; i < 3; ++i)
    calls.push_back(fx.start_charge(fmt::format("cb-trial-{}", i)));
  int approved = 0;
  int unavailable = 0;
  for (auto& call : calls) {
    auto outcome = call.get().outcome;
    approved += outcome == gateway_outcome::approved ? 1 : 0;
    unavailable += outcome == gateway_outcome::unavailable ? 1 : 0;
  }
  CHECK(approved == 2);
  CHECK(unavailable == 1);
  CHECK(fx.simulator.stats("charges") == 2);
  CHECK(fx.current() == state::closed);
  CHECK(fx.metric("circuit_breaker_state", "state", "closed") == 1);
  CHECK(fx.metric("circuit_breaker_state", "state", "half_open") == 0);
  CHECK(fx.metric("circuit_breaker_calls_total", "outcome", "success") == 2);
  CHECK(fx.gateway.health().status == "UP");

  fx.simulator.control(R"({"latencyMs":0})");
  auto after = fx.charge("cb-after");
  CHECK(after.outcome == gateway_outcome::approved);
  CHECK(fx.simulator.order("cb-after", "charges") == 1);
  CHECK(promtool_accepts(metrics::global().expose(), "in-process"));
}

TEST_CASE("a declined card counts as a success, not as a gateway failure",
          "[payments][circuit-breaker]") {
  resilience::circuit_breaker::settings settings;
  settings.sliding_window_size = 2;
  settings.minimum_calls = 2;
  breaker_fixture fx(settings, "it_declines");

  for (int i = 0; i < 4; ++i) {
    auto call = [&fx, i]() -> asio::awaitable<payments::charge_result> {
      payments::charge_request request{fmt::format("cb-declined-{}", i), 500,
                                       "pm_card_chargeDeclined"};
      co_return co_await fx.gateway.charge(std::move(request));
    };
    auto declined = asio::co_spawn(fx.ioc, std::move(call), asio::use_future).get();
    CHECK(declined.outcome == gateway_outcome::declined);
  }

  CHECK(fx.current() == state::closed);
  CHECK(fx.gateway.stats().failed_calls == 0);
  CHECK(fx.metric("circuit_breaker_calls_total", "outcome", "success") == 4);
  CHECK(fx.metric("circuit_breaker_calls_total", "outcome", "failure") == 0);
}

TEST_CASE("the server shows its payment gateway circuit in health, and stays ready when it opens",
          "[health][circuit-breaker]") {
  test::simulator_process simulator;
  test::server_process server({
      {"PAYMENT_GATEWAY_URL", simulator.url()},
      {"APP_PAYMENT_MAX_RETRIES", "0"},
      {"APP_PAYMENT_CIRCUIT_BREAKER_SLIDING_WINDOW_SIZE", "2"},
      {"APP_PAYMENT_CIRCUIT_BREAKER_MINIMUM_NUMBER_OF_CALLS", "2"},
      {"APP_PAYMENT_CIRCUIT_BREAKER_FAILURE_RATE_THRESHOLD", "50"},
      {"APP_PAYMENT_CIRCUIT_BREAKER_WAIT_DURATION_IN_OPEN_STATE", "5000"},
      {"APP_PAYMENT_CIRCUIT_BREAKER_PERMITTED_NUMBER_OF_CALLS_IN_HALF_OPEN_STATE", "1"},
      {"LOGGING_LEVEL_PAYMENTS", "debug"},  // names each call the breaker rejects
  });
  server.start();
  server.wait_until_ready();
  auto port = server.port();
  auto deadline = std::chrono::steady_clock::now() + 90s;
  auto health_until = [&](const std::string& part) {
    test::http_reply reply;
    while (std::chrono::steady_clock::now() < deadline) {
      reply = test::http_get(port, "/actuator/health");
      if (contains(reply.body, part))
        break;
      std::this_thread::sleep_for(100ms);
    }
    return reply;
  };

  auto closed = test::http_get(port, "/actuator/health");
  CHECK(closed.status == 200);
  CHECK(contains(
      closed.body,
      R"("paymentGateway":{"status":"UP","details":{"bufferedCalls":0,"circuitBreaker":"CLOSED")"));
  auto metrics_closed = test::http_get(port, "/metrics").body;
  CHECK(sample(metrics_closed, R"(circuit_breaker_state{name="payment_gateway",state="closed"})") ==
        1);
  CHECK(sample(metrics_closed, R"(circuit_breaker_state{name="payment_gateway",state="open"})") ==
        0);
  CHECK(sample(metrics_closed,
               R"(circuit_breaker_state{name="payment_gateway",state="half_open"})") == 0);
  for (auto outcome : {"success", "failure", "rejected"})
    CHECK(
        sample(metrics_closed,
               fmt::format(R"(circuit_breaker_calls_total{{name="payment_gateway",outcome="{}"}})",
                           outcome)) == 0);

  // Two orders whose payments fail during an outage open the breaker.
  simulator.control(R"({"outage":true})");
  auto customer = test::unique_name("cust-breaker");
  auto product = test::unique_name("prod-breaker");
  test::put_customer(port, customer, "breaker@example.com");
  test::put_product(port, product, "Fuse", "3.00", 100);
  std::vector<std::string> order_ids;
  auto place_order = [&] {
    auto reply = test::http_call(
        port, "POST", "/api/orders",
        fmt::format(
            R"({{"customerId":"{}","paymentMethod":"pm_card_visa","totalAmount":3.00,"items":[{{"productId":"{}","quantity":1,"price":3.00}}]}})",
            customer, product));
    CHECK(reply.status == 200);
    order_ids.push_back(test::json_field(reply.body, "orderId"));
    return order_ids.back();
  };
  place_order();
  place_order();
  auto open = health_until("CIRCUIT_OPEN");
  CHECK(contains(
      open.body,
      R"("paymentGateway":{"status":"CIRCUIT_OPEN","details":{"bufferedCalls":2,"circuitBreaker":"OPEN","failedCalls":2,"failureRate":"100.0%")"));
  // The gateway being down is no reason to take the replica out of service.
  CHECK(open.status == 200);
  CHECK(contains(open.body, R"({"status":"UP","components":)"));
  CHECK(contains(open.body, R"("readiness":{"status":"UP"})"));
  CHECK(test::http_get(port, "/actuator/health/readiness").status == 200);
  CHECK(test::http_get(port, "/actuator/health/liveness").status == 200);

  // Orders are still accepted; their payment is not even sent to the gateway.
  auto rejected_order = place_order();
  auto rejection = fmt::format("charge of order {} not sent", rejected_order);
  while (!contains(server.log_text(), rejection) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(100ms);
  CHECK(contains(server.log_text(), rejection));
  auto metrics_open = test::http_get(port, "/metrics").body;
  CHECK(sample(metrics_open,
               R"(circuit_breaker_calls_total{name="payment_gateway",outcome="rejected"})") >= 1);
  CHECK(sample(metrics_open,
               R"(circuit_breaker_calls_total{name="payment_gateway",outcome="failure"})") >= 2);
  CHECK(sample(metrics_open, R"(circuit_breaker_state{name="payment_gateway",state="open"})") == 1);
  CHECK(sample(metrics_open, R"(circuit_breaker_state{name="payment_gateway",state="closed"})") ==
        0);
  CHECK(promtool_accepts(metrics_open, std::to_string(port)));
  simulator.control(R"({"outage":false})");  // the ledger is unreadable during an outage
  CHECK(simulator.order(rejected_order, "chargeAttempts") == 0);

  // Once the open duration has passed, a trial call (a charge or a compensating refund)
  // succeeds and closes the breaker. Then the test waits for the saga to finish its orders
  // and refunds, so no later test's server inherits gateway work.
  auto recovered = health_until(R"("circuitBreaker":"CLOSED")");
  CHECK(contains(recovered.body, R"("paymentGateway":{"status":"UP")"));
  auto settled = [&] {
    for (const auto& id : order_ids) {
      auto status = test::json_field(test::http_get(port, "/api/orders/" + id).body, "status");
      if (status != "CONFIRMED" && status != "CANCELLED" && status != "FAILED")
        return false;
    }
    // Its own orders' refunds only: another test's leftover (a refund for a gateway long
    // gone, backing off for minutes) is not this server's to finish.
    pqxx::connection db(test::db_url());
    pqxx::nontransaction tx(db);
    std::string ids;
    for (const auto& id : order_ids)
      ids += (ids.empty() ? "" : ",") + id;
    return tx.exec_params1(
                 "SELECT count(*) FROM payments WHERE refund_state = 'PENDING'"
                 " AND order_id = ANY(string_to_array($1, ','))",
                 ids)[0]
               .as<int>() == 0;
  };
  while (!settled() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(200ms);
  CHECK(settled());
  CHECK(server.terminate() == 0);
}
