// One order's trace id, followed through the logs of every stage and the Kafka headers.

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <catch2/catch.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "support/catalog_fixture.hpp"
#include "support/http_client.hpp"
#include "support/kafka_test_consumer.hpp"
#include "support/server_process.hpp"
#include "support/simulator_process.hpp"
#include "support/test_environment.hpp"

using namespace op;
using namespace std::chrono_literals;

TEST_CASE("an order's trace id travels through every stage's logs and every event's traceparent",
          "[trace]") {
  test::simulator_process gateway;
  test::server_process server({{"PAYMENT_GATEWAY_URL", gateway.url()},
                               {"LOGGING_LEVEL_SAGA", "debug"},
                               {"LOGGING_LEVEL_ORDERS", "debug"}});
  server.start();
  server.wait_until_ready();
  auto customer = test::unique_name("cust-trace");
  auto product = test::unique_name("prod-trace");
  test::put_customer(server.port(), customer, "trace@example.com");
  test::put_product(server.port(), product, "Traced", "4.00", 10);

  const std::string trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  auto reply = test::http_call(
      server.port(), "POST", "/api/orders",
      fmt::format(
          R"({{"customerId":"{}","customerEmail":"trace@example.com","totalAmount":4.00,"items":[{{"productId":"{}","quantity":1,"price":4.00}}]}})",
          customer, product),
      {{"traceparent", "00-" + trace_id + "-00f067aa0ba902b7-01"}});
  REQUIRE(reply.status == 200);
  auto id = test::json_field(reply.body, "orderId");

  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (test::json_field(test::http_get(server.port(), "/api/orders/" + id).body, "status") !=
             "CONFIRMED" &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(50ms);
  REQUIRE(test::json_field(test::http_get(server.port(), "/api/orders/" + id).body, "status") ==
          "CONFIRMED");

  // Every log line about this order carries its id and the caller's trace id, and the lines
  // cover placement and all four stages.
  std::set<std::string> seen;
  std::istringstream log(server.log_text());
  std::string line;
  while (std::getline(log, line)) {
    rapidjson::Document doc;
    doc.Parse(line.c_str());
    if (!doc.IsObject() || !doc.HasMember("orderId") || doc["orderId"].GetString() != id)
      continue;
    REQUIRE(doc.HasMember("traceId"));
    CHECK(std::string(doc["traceId"].GetString()) == trace_id);
    std::string message = doc["message"].GetString();
    seen.insert(message.substr(0, message.find(':')));
    CHECK(line.find("trace@example.com") == std::string::npos);  // no emails in logs
  }
  CHECK(seen == std::set<std::string>{"order placed", "validate", "reserve", "pay", "confirm"});

  // The events carry the trace on Kafka, each with its own span.
  test::kafka_test_consumer confirmed("orders.confirmed");
  auto messages = confirmed.wait_for_key(id, 1, 30s);
  REQUIRE(messages.size() == 1);
  auto traceparent = messages[0].headers["traceparent"];
  CHECK(traceparent.rfind("00-" + trace_id + "-", 0) == 0);
  CHECK(traceparent.find("00f067aa0ba902b7") == std::string::npos);

  CHECK(server.terminate() == 0);
}

TEST_CASE("a malformed traceparent starts a fresh trace instead of failing the request",
          "[trace]") {
  test::server_process server;
  server.start();
  server.wait_until_ready();
  test::put_customer(server.port(), "cust-123", "john@example.com");
  test::put_product(server.port(), "prod-456", "Wireless Headphones", "199.99", 1000000);
  auto reply = test::http_call(
      server.port(), "POST", "/api/orders",
      R"({"customerId":"cust-123","totalAmount":199.99,"items":[{"productId":"prod-456","quantity":1,"price":199.99}]})",
      {{"traceparent", "not-a-trace"}});
  CHECK(reply.status == 200);
  auto id = test::json_field(reply.body, "orderId");
  test::kafka_test_consumer placed("orders.placed");
  auto messages = placed.wait_for_key(id, 1, 30s);
  REQUIRE(messages.size() == 1);
  auto traceparent = messages[0].headers["traceparent"];
  CHECK(traceparent.size() == 55);
  CHECK(traceparent.rfind("00-", 0) == 0);
}
