#include "platform/http/health_routes.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <vector>

#include "dispatch.hpp"

using namespace op;
using namespace op::http;
using namespace std::chrono_literals;

namespace {

response get(const router& r, std::string target) {
  return test::dispatch(r, verb::get, std::move(target));
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A monitor with a probed "db" and an informational "paymentGateway" the test switches.
struct health_fixture {
  health_fixture() {
    monitor.add("db", [this]() -> std::optional<std::string> {
      if (db_up)
        return std::nullopt;
      return std::string("connection refused");
    });
    monitor.add_informational("paymentGateway", [this] {
      runtime::health_monitor::report out;
      out.status = circuit_open ? "CIRCUIT_OPEN" : "UP";
      out.details = {{"circuitBreaker", std::string(circuit_open ? "OPEN" : "CLOSED")},
                     {"failedCalls", std::int64_t{circuit_open ? 6 : 0}}};
      return out;
    });
    add_health_routes(routes, monitor, [] { return std::nullopt; });
  }
  ~health_fixture() { monitor.stop(); }

  std::atomic<bool> db_up{true};
  std::atomic<bool> circuit_open{false};
  runtime::health_monitor monitor{1h};
  router routes;
};

}  // namespace

TEST_CASE("an informational component shows in health but never makes it DOWN or unready",
          "[http][health]") {
  health_fixture fx;
  fx.monitor.start();

  auto closed = get(fx.routes, "/actuator/health");
  CHECK(closed.result() == status::ok);
  CHECK(contains(
      closed.body(),
      R"("paymentGateway":{"status":"UP","details":{"circuitBreaker":"CLOSED","failedCalls":0}})"));

  fx.circuit_open = true;  // read on every request, not on the probe interval
  auto open = get(fx.routes, "/actuator/health");
  CHECK(open.result() == status::ok);
  CHECK(contains(open.body(), R"({"status":"UP","components":{"db":{"status":"UP")"));
  CHECK(contains(
      open.body(),
      R"("paymentGateway":{"status":"CIRCUIT_OPEN","details":{"circuitBreaker":"OPEN","failedCalls":6}})"));
  CHECK(contains(open.body(), R"("readiness":{"status":"UP"})"));
  CHECK(get(fx.routes, "/actuator/health/readiness").result() == status::ok);
  CHECK(get(fx.routes, "/actuator/health/liveness").result() == status::ok);
  CHECK(fx.monitor.all_up());
}

TEST_CASE("a probed component DOWN still makes health DOWN and readiness 503", "[http][health]") {
  health_fixture fx;
  fx.db_up = false;
  fx.monitor.start();

  auto health = get(fx.routes, "/actuator/health");
  CHECK(health.result() == status::service_unavailable);
  CHECK(contains(health.body(), R"({"status":"DOWN")"));
  CHECK(contains(health.body(), R"("db":{"status":"DOWN")"));
  CHECK(contains(health.body(), R"("error":"connection refused")"));
  CHECK(contains(health.body(), R"("paymentGateway":{"status":"UP")"));
  auto readiness = get(fx.routes, "/actuator/health/readiness");
  CHECK(readiness.result() == status::service_unavailable);
  CHECK(contains(readiness.body(), "a dependency is DOWN"));
}

TEST_CASE("an informational reporter that throws reads as UNKNOWN", "[http][health]") {
  runtime::health_monitor monitor(1h);
  monitor.add_informational(
      "flaky", []() -> runtime::health_monitor::report { throw std::runtime_error("no state"); });

  auto reports = monitor.informational();

  REQUIRE(reports.count("flaky") == 1);
  CHECK(reports["flaky"].status == "UNKNOWN");
  CHECK(std::get<std::string>(reports["flaky"].details["error"]) == "no state");
  CHECK(monitor.all_up());
}

TEST_CASE("a list detail is a JSON array, an empty one too", "[http][health][stages]") {
  runtime::health_monitor monitor(1h);
  std::vector<std::string> enabled = {"pay", "confirm"};
  monitor.add_informational("stages", [&enabled] {
    return runtime::health_monitor::report{"UP", {{"enabled", enabled}}};
  });
  router routes;
  add_health_routes(routes, monitor, [] { return std::nullopt; });
  monitor.start();

  CHECK(contains(get(routes, "/actuator/health").body(),
                 R"("stages":{"status":"UP","details":{"enabled":["pay","confirm"]}})"));
  enabled.clear();
  CHECK(contains(get(routes, "/actuator/health").body(),
                 R"("stages":{"status":"UP","details":{"enabled":[]}})"));
  monitor.stop();
}

TEST_CASE("without the API the seed's /api/orders/health is not routed but the probes are",
          "[http][health][stages]") {
  runtime::health_monitor monitor(1h);
  router routes;
  add_health_routes(
      routes, monitor, [] { return std::nullopt; }, false);
  monitor.start();

  CHECK(get(routes, "/api/orders/health").result() == status::not_found);
  CHECK(get(routes, "/actuator/health").result() == status::ok);
  CHECK(get(routes, "/actuator/health/readiness").result() == status::ok);
  CHECK(get(routes, "/actuator/health/liveness").result() == status::ok);
  monitor.stop();
}
