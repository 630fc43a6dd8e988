// The parameters of GET /api/orders/{id}?waitFor=final and POST /api/orders/{id}/cancel
// against the real server, PostgreSQL and Kafka: every refusal names its parameter and rule.

#include <catch2/catch.hpp>

#include "support/catalog_fixture.hpp"
#include "support/http_client.hpp"
#include "support/server_process.hpp"

using namespace op;

namespace {

struct running_server {
  test::server_process server;
  explicit running_server(std::map<std::string, std::string> env = {}) : server(std::move(env)) {
    server.start();
    server.wait_until_ready();
    test::put_customer(port(), "cust-123", "john@example.com");
    test::put_product(port(), "prod-456", "Wireless Headphones", "199.99", 1000000);
  }
  unsigned short port() const { return server.port(); }
};

std::string place(unsigned short port) {
  auto reply = test::http_call(
      port, "POST", "/api/orders",
      R"({"customerId":"cust-123","totalAmount":199.99,"items":[{"productId":"prod-456","quantity":1,"price":199.99}]})");
  REQUIRE(reply.status == 200);
  return test::json_field(reply.body, "orderId");
}

}  // namespace

TEST_CASE("waitFor and timeoutMs out of their rules get 400 naming the parameter", "[wait]") {
  running_server s;
  auto id = place(s.port());
  struct bad_case {
    std::string query;
    std::string field;
    std::string message;
  };
  const std::vector<bad_case> cases = {
      {"waitFor=soon", "waitFor", "waitFor must be final"},
      {"waitFor=", "waitFor", "waitFor must be final"},
      {"waitFor=final&timeoutMs=30001", "timeoutMs",
       "timeoutMs must be an integer from 0 to 30000"},
      {"waitFor=final&timeoutMs=-1", "timeoutMs", "timeoutMs must be an integer from 0 to 30000"},
      {"waitFor=final&timeoutMs=ten", "timeoutMs", "timeoutMs must be an integer from 0 to 30000"},
      {"waitFor=final&timeoutMs=1.5", "timeoutMs", "timeoutMs must be an integer from 0 to 30000"},
      {"waitFor=final&timeoutMs=", "timeoutMs", "timeoutMs must be an integer from 0 to 30000"},
  };
  for (const auto& c : cases) {
    INFO(c.query);
    auto reply = test::http_get(s.port(), "/api/orders/" + id + "?" + c.query);
    INFO(reply.body);
    CHECK(reply.status == 400);
    CHECK(test::json_field(reply.body, "error") == "validation_failed");
    CHECK(test::json_field(reply.body, "field") == c.field);
    CHECK(test::json_field(reply.body, "message") == c.message);
  }
  // Within the rules: answered (timeoutMs=0 reads the order without waiting).
  auto now = test::http_get(s.port(), "/api/orders/" + id + "?waitFor=final&timeoutMs=0");
  CHECK(now.status == 200);
  CHECK(now.headers.count("wait-timed-out") == 1);
  // Without waitFor, the route is what it always was.
  auto plain = test::http_get(s.port(), "/api/orders/" + id);
  CHECK(plain.status == 200);
  CHECK(plain.headers.count("wait-timed-out") == 0);
  // Unknown orders: 404 whether waiting or cancelling.
  CHECK(test::http_get(s.port(), "/api/orders/ORD-NONE?waitFor=final&timeoutMs=100").status == 404);
  auto cancel = test::http_call(s.port(), "POST", "/api/orders/ORD-NONE/cancel");
  CHECK(cancel.status == 404);
  CHECK(test::json_field(cancel.body, "field") == "orderId");
}

TEST_CASE("past server.max-waiting-requests, waitFor gets 503 with Retry-After", "[wait]") {
  running_server s(std::map<std::string, std::string>{{"SERVER_MAX_WAITING_REQUESTS", "0"}});
  auto id = place(s.port());
  auto reply = test::http_get(s.port(), "/api/orders/" + id + "?waitFor=final&timeoutMs=100");
  INFO(reply.body);
  CHECK(reply.status == 503);
  CHECK(reply.headers["retry-after"] == "1");
  CHECK(test::json_field(reply.body, "error") == "too_many_waiting_requests");
  // Reading without waiting is not limited.
  CHECK(test::http_get(s.port(), "/api/orders/" + id).status == 200);
}
