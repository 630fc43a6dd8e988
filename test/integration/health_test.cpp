#include <catch2/catch.hpp>
#include <thread>

#include "support/http_client.hpp"
#include "support/server_process.hpp"
#include "support/test_environment.hpp"

using namespace op;
using namespace std::chrono_literals;

namespace {
// Polls GET target until `predicate(reply)` or the timeout; returns the last reply.
template <class Predicate>
test::http_reply poll(unsigned short port, const std::string& target, Predicate predicate,
                      std::chrono::seconds timeout = 60s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  test::http_reply last;
  while (std::chrono::steady_clock::now() < deadline) {
    try {
      last = test::http_get(port, target);
      if (predicate(last))
        break;
    } catch (const std::exception&) {
      // not listening yet
    }
    std::this_thread::sleep_for(200ms);
  }
  return last;
}
bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}
}  // namespace

TEST_CASE("a started server reports db and kafka UP and answers the seed's health text",
          "[health]") {
  test::server_process server;
  server.start();
  server.wait_until_ready();

  auto seed = test::http_get(server.port(), "/api/orders/health");
  CHECK(seed.status == 200);
  CHECK(seed.body == "Order Processing Service is healthy");

  auto health = test::http_get(server.port(), "/actuator/health");
  CHECK(health.status == 200);
  CHECK(contains(health.body, R"("status":"UP")"));
  CHECK(contains(health.body, R"("db":{"status":"UP")"));
  CHECK(contains(health.body, R"("kafka":{"status":"UP")"));
  CHECK(test::http_get(server.port(), "/actuator/health/liveness").status == 200);
  CHECK(test::http_get(server.port(), "/actuator/health/readiness").status == 200);

  auto missing = test::http_get(server.port(), "/no/such/route");
  CHECK(missing.status == 404);
  CHECK(missing.headers["content-type"] == "application/json");
  auto wrong_method = test::http_call(server.port(), "DELETE", "/actuator/health");
  CHECK(wrong_method.status == 405);

  CHECK(server.terminate() == 0);
  CHECK(contains(server.log_text(), "received SIGTERM"));
}

TEST_CASE("health turns DOWN when the broker stops and UP when it returns", "[health][outage]") {
  test::server_process server;
  server.start();
  server.wait_until_ready();

  REQUIRE(test::run_script("./scripts/infra/kafka stop test") == 0);
  auto down = poll(server.port(), "/actuator/health",
                   [](const auto& r) { return contains(r.body, R"("kafka":{"status":"DOWN")"); });
  auto liveness_while_down = test::http_get(server.port(), "/actuator/health/liveness").status;
  REQUIRE(test::run_script("./scripts/infra/kafka start test") == 0);
  CHECK(down.status == 503);
  CHECK(contains(down.body, R"("kafka":{"status":"DOWN")"));
  CHECK(contains(down.body, R"("error":)"));
  CHECK(contains(down.body, R"("db":{"status":"UP")"));
  CHECK(liveness_while_down == 200);

  auto up = poll(server.port(), "/actuator/health", [](const auto& r) { return r.status == 200; });
  CHECK(up.status == 200);
  CHECK(contains(up.body, R"("kafka":{"status":"UP")"));
  CHECK(server.terminate() == 0);
}

TEST_CASE("health turns DOWN when PostgreSQL stops and UP when it returns", "[health][outage]") {
  test::server_process server;
  server.start();
  server.wait_until_ready();

  REQUIRE(test::run_script("./scripts/infra/postgres stop test") == 0);
  auto down = poll(server.port(), "/actuator/health",
                   [](const auto& r) { return contains(r.body, R"("db":{"status":"DOWN")"); });
  auto readiness_while_down = test::http_get(server.port(), "/actuator/health/readiness").status;
  auto liveness_while_down = test::http_get(server.port(), "/actuator/health/liveness").status;
  REQUIRE(test::run_script("./scripts/infra/postgres start test") == 0);
  CHECK(down.status == 503);
  CHECK(contains(down.body, R"("db":{"status":"DOWN")"));
  CHECK(readiness_while_down == 503);
  CHECK(liveness_while_down == 200);

  auto up = poll(server.port(), "/actuator/health/readiness",
                 [](const auto& r) { return r.status == 200; });
  CHECK(up.status == 200);
  CHECK(server.terminate() == 0);
}

TEST_CASE("a server started before its database waits, then becomes ready", "[health][startup]") {
  // A port nothing listens on: readiness must say why it is not ready, not hang or exit.
  test::server_process server({{"DB_URL", "postgresql://orders@127.0.0.1:" +
                                              std::to_string(test::free_port()) + "/orderdb"}});
  server.start();
  auto starting = poll(
      server.port(), "/actuator/health/readiness", [](const auto& r) { return r.status == 503; },
      30s);
  CHECK(starting.status == 503);
  CHECK(contains(starting.body, "migrations"));
  CHECK(server.running());
  CHECK(server.terminate() == 0);
}
