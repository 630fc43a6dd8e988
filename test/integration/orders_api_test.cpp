// The orders HTTP API against the real server, PostgreSQL and Kafka.

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <catch2/catch.hpp>
#include <future>
#include <pqxx/pqxx>
#include <set>
#include <thread>

#include "support/catalog_fixture.hpp"
#include "support/http_client.hpp"
#include "support/kafka_test_consumer.hpp"
#include "support/server_process.hpp"
#include "support/test_environment.hpp"

using namespace op;
using namespace std::chrono_literals;

namespace {

const std::string seed_order = R"({
    "customerId": "cust-123",
    "customerEmail": "john@example.com",
    "totalAmount": 199.99,
    "shippingAddress": "123 Main St, City, Country",
    "items": [
      {
        "productId": "prod-456",
        "productName": "Wireless Headphones",
        "quantity": 1,
        "price": 199.99
      }
    ]
  })";

std::string order_for(const std::string& customer, const std::string& product, int quantity,
                      const std::string& price, const std::string& total) {
  return fmt::format(
      R"({{"customerId":"{}","totalAmount":{},"items":[{{"productId":"{}","quantity":{},"price":{}}}]}})",
      customer, total, product, quantity, price);
}

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

test::http_reply post_order(unsigned short port, const std::string& body,
                            const std::string& idempotency_key = "") {
  std::map<std::string, std::string> headers;
  if (!idempotency_key.empty())
    headers["Idempotency-Key"] = idempotency_key;
  return test::http_call(port, "POST", "/api/orders", body, headers);
}

// 12345 -> "123.45"
std::string money_text(long cents) {
  return fmt::format("{}.{:02}", cents / 100, cents % 100);
}

}  // namespace

TEST_CASE("the seed's curl example is answered as the seed documents", "[orders]") {
  running_server s;
  auto reply = post_order(s.port(), seed_order);
  REQUIRE(reply.status == 200);
  auto id = test::json_field(reply.body, "orderId");
  REQUIRE(id.rfind("ORD-", 0) == 0);
  CHECK(test::json_field(reply.body, "message") == "Order placed successfully. Order ID: " + id);
  CHECK(test::json_field(reply.body, "status") == "PLACED");

  auto order = test::http_get(s.port(), "/api/orders/" + id);
  REQUIRE(order.status == 200);
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseNumbersAsStringsFlag>(order.body.c_str());
  CHECK(std::string(doc["orderId"].GetString()) == id);
  CHECK(std::string(doc["customerId"].GetString()) == "cust-123");
  CHECK(std::string(doc["totalAmount"].GetString()) == "199.99");
  CHECK(doc["items"].Size() == 1);
  CHECK(std::string(doc["items"][0]["price"].GetString()) == "199.99");
  CHECK(doc.HasMember("status"));
  CHECK(doc.HasMember("createdAt"));
  CHECK(doc.HasMember("updatedAt"));

  auto history = test::http_get(s.port(), "/api/orders/" + id + "/events");
  REQUIRE(history.status == 200);
  CHECK(history.body.find(R"("seq":1,"status":"PLACED")") != std::string::npos);

  auto missing = test::http_get(s.port(), "/api/orders/ORD-DOES-NOT-EXIST");
  CHECK(missing.status == 404);
  CHECK(test::json_field(missing.body, "error") == "not_found");
  CHECK(test::http_get(s.port(), "/api/orders/ORD-DOES-NOT-EXIST/events").status == 404);
}

TEST_CASE("money is exact: 0.10 x 3 is 0.30", "[orders][money]") {
  running_server s;
  test::put_product(s.port(), "prod-dime", "Dime", "0.10", 100);
  auto reply = post_order(s.port(), order_for("cust-123", "prod-dime", 3, "0.10", "0.30"));
  REQUIRE(reply.status == 200);
  auto order = test::http_get(s.port(), "/api/orders/" + test::json_field(reply.body, "orderId"));
  CHECK(order.body.find(R"("totalAmount":0.30)") != std::string::npos);
  CHECK(order.body.find(R"("price":0.10)") != std::string::npos);
}

TEST_CASE("items keep their order, and their names exactly, quotes, commas and braces included",
          "[orders]") {
  // The items are stored with one statement, as arrays; names must survive that unchanged.
  running_server s;
  test::put_product(s.port(), "prod-a", "A", "1.00", 100);
  test::put_product(s.port(), "prod-b", "B", "2.00", 100);
  const std::string body =
      R"({"customerId":"cust-123","totalAmount":5.00,"items":[)"
      R"({"productId":"prod-b","productName":"say \"NULL\", {x} \\ y","quantity":1,"price":2.00},)"
      R"({"productId":"prod-a","productName":"","quantity":3,"price":1.00}]})";
  auto reply = post_order(s.port(), body);
  REQUIRE(reply.status == 200);
  auto order = test::http_get(s.port(), "/api/orders/" + test::json_field(reply.body, "orderId"));
  REQUIRE(order.status == 200);
  rapidjson::Document doc;
  doc.Parse(order.body.c_str());
  REQUIRE(doc["items"].Size() == 2);
  CHECK(std::string(doc["items"][0]["productId"].GetString()) == "prod-b");
  CHECK(std::string(doc["items"][0]["productName"].GetString()) == R"(say "NULL", {x} \ y)");
  CHECK(doc["items"][0]["quantity"].GetInt() == 1);
  CHECK(std::string(doc["items"][1]["productId"].GetString()) == "prod-a");
  CHECK(doc["items"][1]["quantity"].GetInt() == 3);
}

TEST_CASE("every class of bad input gets its 4xx naming the field, and the server stays healthy",
          "[orders][validation]") {
  running_server s;
  struct bad_case {
    std::string body;
    int status;
    std::string field;
  };
  std::string long_text(600, 'x');
  std::vector<bad_case> cases = {
      {"{not json", 400, "null"},
      {"[1,2]", 400, "null"},
      {R"({"customerId":123,"totalAmount":1,"items":[{"productId":"p","quantity":1,"price":1}]})",
       400, "customerId"},
      {R"({"totalAmount":1,"items":[{"productId":"p","quantity":1,"price":1}]})", 400,
       "customerId"},
      {R"({"customerId":"c","totalAmount":1})", 400, "items"},
      {R"({"customerId":"c","totalAmount":1,"items":[]})", 400, "items"},
      {R"({"customerId":"c","totalAmount":1,"items":"x"})", 400, "items"},
      {R"({"customerId":"c","totalAmount":1,"items":[{"productId":"p","quantity":0,"price":1}]})",
       400, "items[0].quantity"},
      {R"({"customerId":"c","totalAmount":1,"items":[{"productId":"p","quantity":1.5,"price":1}]})",
       400, "items[0].quantity"},
      {R"({"customerId":"c","totalAmount":1,"items":[{"productId":"p","quantity":"2","price":1}]})",
       400, "items[0].quantity"},
      {R"({"customerId":"c","totalAmount":1,"items":[{"productId":"p","quantity":1001,"price":1}]})",
       400, "items[0].quantity"},
      {R"({"customerId":"c","totalAmount":1,"items":[{"productId":"p","quantity":1,"price":-1}]})",
       400, "items[0].price"},
      {R"({"customerId":"c","totalAmount":1,"items":[{"productId":"p","quantity":1,"price":1.999}]})",
       400, "items[0].price"},
      {R"({"customerId":"c","totalAmount":-5,"items":[{"productId":"p","quantity":1,"price":1}]})",
       400, "totalAmount"},
      {R"({"customerId":"c","totalAmount":"5","items":[{"productId":"p","quantity":1,"price":1}]})",
       400, "totalAmount"},
      {R"({"customerId":"c","customerEmail":"not-an-email","totalAmount":1,"items":[{"productId":"p","quantity":1,"price":1}]})",
       400, "customerEmail"},
      {R"({"customerId":"c","shippingAddress":")" + long_text +
           R"(","totalAmount":1,"items":[{"productId":"p","quantity":1,"price":1}]})",
       400, "shippingAddress"},
      {R"({"customerId":")" + long_text +
           R"(","totalAmount":1,"items":[{"productId":"p","quantity":1,"price":1}]})",
       400, "customerId"},
  };
  for (const auto& c : cases) {
    INFO(c.body.substr(0, 200));
    auto reply = post_order(s.port(), c.body);
    CHECK(reply.status == c.status);
    CHECK(reply.headers["content-type"] == "application/json");
    CHECK(test::json_field(reply.body, "field") == c.field);
    CHECK_FALSE(test::json_field(reply.body, "message").empty());
  }

  std::string huge =
      R"({"customerId":"c","shippingAddress":")" + std::string(1100 * 1024, 'a') + "\"}";
  auto too_large = post_order(s.port(), huge);
  CHECK(too_large.status == 413);
  CHECK(test::json_field(too_large.body, "error") == "payload_too_large");

  CHECK(test::http_call(s.port(), "DELETE", "/api/orders").status == 405);
  CHECK(test::http_get(s.port(), "/api/nothing/here").status == 404);
  CHECK(test::http_get(s.port(), "/api/orders?status=SHIPPED").status == 400);
  CHECK(test::http_get(s.port(), "/api/orders?limit=0").status == 400);
  CHECK(test::http_get(s.port(), "/api/orders?limit=5000").status == 400);

  CHECK(test::http_get(s.port(), "/actuator/health/readiness").status == 200);
  CHECK(s.server.running());
}

TEST_CASE("an Idempotency-Key replays the first answer and never creates a second order",
          "[orders][idempotency]") {
  running_server s;
  auto customer = test::unique_name("cust-idem");
  test::put_customer(s.port(), customer, "idem@example.com");
  auto body = order_for(customer, "prod-456", 1, "199.99", "199.99");
  auto key = test::unique_name("key");

  auto first = post_order(s.port(), body, key);
  REQUIRE(first.status == 200);
  auto again = post_order(s.port(), body, key);
  CHECK(again.status == 200);
  CHECK(again.body == first.body);
  CHECK(again.headers["idempotent-replayed"] == "true");

  auto other = post_order(s.port(), order_for(customer, "prod-456", 2, "199.99", "399.98"), key);
  CHECK(other.status == 422);
  CHECK(test::json_field(other.body, "field") == "Idempotency-Key");

  // Twenty concurrent requests with one new key: one order, twenty identical answers.
  auto concurrent_key = test::unique_name("key");
  std::vector<std::string> answers(20);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < answers.size(); ++i)
    threads.emplace_back([&, i] {
      auto r = post_order(s.port(), body, concurrent_key);
      answers[i] = r.status == 200 ? test::json_field(r.body, "orderId")
                                   : "status " + std::to_string(r.status);
    });
  for (auto& t : threads)
    t.join();
  std::set<std::string> distinct(answers.begin(), answers.end());
  CHECK(distinct.size() == 1);
  CHECK(distinct.begin()->rfind("ORD-", 0) == 0);

  auto list = test::http_get(s.port(), "/api/orders?customerId=" + customer + "&limit=200");
  REQUIRE(list.status == 200);
  CHECK(test::json_field(list.body, "count") == "2");
}

TEST_CASE("orders placed at once are each stored once, with their own items and total",
          "[orders][idempotency]") {
  running_server s;
  auto customer = test::unique_name("cust-burst");
  test::put_customer(s.port(), customer, "burst@example.com");
  // 30 orders of different quantities sent together (so they share transactions), the first
  // 10 of them twice with the same key.
  const int orders = 30, sent_twice = 10;
  auto quantity_of = [](int i) { return i % 5 + 1; };
  auto body_of = [&](int i) {
    auto q = quantity_of(i);
    return order_for(customer, "prod-456", q, "199.99", money_text(19999 * q));
  };
  auto key_prefix = test::unique_name("burst");
  std::vector<std::string> answers(orders + sent_twice);
  std::vector<std::thread> threads;
  for (int n = 0; n < orders + sent_twice; ++n)
    threads.emplace_back([&, n] {
      int i = n % orders;
      auto r = post_order(s.port(), body_of(i), key_prefix + "-" + std::to_string(i));
      answers[static_cast<std::size_t>(n)] = r.status == 200 ? test::json_field(r.body, "orderId")
                                                             : "status " + std::to_string(r.status);
    });
  for (auto& t : threads)
    t.join();

  std::set<std::string> distinct(answers.begin(), answers.end());
  CHECK(distinct.size() == static_cast<std::size_t>(orders));
  for (int i = 0; i < sent_twice; ++i)
    CHECK(answers[static_cast<std::size_t>(orders + i)] == answers[static_cast<std::size_t>(i)]);
  for (int i = 0; i < orders; ++i) {
    const auto& id = answers[static_cast<std::size_t>(i)];
    REQUIRE(id.rfind("ORD-", 0) == 0);
    auto got = test::http_get(s.port(), "/api/orders/" + id);
    REQUIRE(got.status == 200);
    rapidjson::Document doc;
    doc.Parse(got.body.c_str());
    REQUIRE(doc["items"].Size() == 1);
    CHECK(doc["items"][0]["quantity"].GetInt() == quantity_of(i));
    CHECK(test::json_field(got.body, "totalAmount") == money_text(19999 * quantity_of(i)));
  }
  auto list = test::http_get(s.port(), "/api/orders?customerId=" + customer + "&limit=200");
  REQUIRE(list.status == 200);
  CHECK(test::json_field(list.body, "count") == std::to_string(orders));
}

TEST_CASE("orders list newest first, filtered and bounded", "[orders]") {
  running_server s;
  auto customer = test::unique_name("cust-list");
  test::put_customer(s.port(), customer, "list@example.com");
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i)
    ids.push_back(test::json_field(
        post_order(s.port(), order_for(customer, "prod-456", 1, "199.99", "199.99")).body,
        "orderId"));
  auto list = test::http_get(s.port(), "/api/orders?customerId=" + customer + "&limit=2");
  REQUIRE(list.status == 200);
  CHECK(test::json_field(list.body, "count") == "2");
  CHECK(list.body.find(ids[2]) < list.body.find(ids[1]));
  CHECK(list.body.find(ids[0]) == std::string::npos);
}

TEST_CASE("past server.max-pending-orders, an order gets 503 overloaded at once, not a wait",
          "[orders][overload]") {
  running_server s(std::map<std::string, std::string>{{"SERVER_MAX_PENDING_ORDERS", "1"}});
  auto in_progress = [&] {
    return test::metric_sample(test::http_get(s.port(), "/metrics").body,
                               "orders_placements_in_progress");
  };
  // A placement held by a lock on the orders table takes the only place.
  pqxx::connection db(test::db_url());
  pqxx::work hold(db);
  hold.exec("LOCK TABLE orders IN SHARE MODE");
  auto held = std::async(std::launch::async, [&] { return post_order(s.port(), seed_order); });
  REQUIRE(test::eventually([&] { return in_progress() == 1; }));

  auto refused = post_order(s.port(), seed_order);
  INFO(refused.body);
  CHECK(refused.status == 503);
  CHECK(refused.headers["retry-after"] == "1");
  CHECK(test::json_field(refused.body, "error") == "overloaded");
  CHECK(test::json_field(refused.body, "message").find("server.max-pending-orders") !=
        std::string::npos);
  // Bad input is still told what is wrong, whatever the load.
  CHECK(post_order(s.port(), "{}").status == 400);

  hold.abort();
  auto accepted = held.get();
  CHECK(accepted.status == 200);
  CHECK(in_progress() == 0);
  auto after = post_order(s.port(), seed_order);
  CHECK(after.status == 200);
  auto metrics = test::http_get(s.port(), "/metrics").body;
  CHECK(test::metric_sample(metrics, "orders_refused_overloaded_total") == 1);
  // Both accepted orders are stored.
  for (const auto& reply : {accepted, after})
    CHECK(
        test::http_get(s.port(), "/api/orders/" + test::json_field(reply.body, "orderId")).status ==
        200);
}

TEST_CASE("admin routes need the bearer token", "[orders][admin]") {
  running_server s;
  CHECK(test::http_get(s.port(), "/api/admin/metrics").status == 401);
  CHECK(test::http_call(s.port(), "GET", "/api/admin/metrics", "",
                        {{"Authorization", "Bearer wrong"}})
            .status == 401);
  auto metrics = test::http_call(s.port(), "GET", "/api/admin/metrics", "",
                                 {{"Authorization", "Bearer " + test::test_admin_token}});
  CHECK(metrics.status == 200);
  CHECK(metrics.body.front() == '[');
  CHECK(test::http_call(s.port(), "PUT", "/api/admin/products/p1", R"({"name":"x"})").status ==
        401);
  auto bad_product = test::http_call(s.port(), "PUT", "/api/admin/products/p1",
                                     R"({"name":"x","price":1.001,"stock":1})",
                                     {{"Authorization", "Bearer " + test::test_admin_token}});
  CHECK(bad_product.status == 400);
  CHECK(test::json_field(bad_product.body, "field") == "price");
  auto stock = test::get_stock(s.port(), "prod-456");
  CHECK(stock.available + stock.reserved + stock.sold >= 1000000);
}

TEST_CASE("an accepted order's OrderPlaced event arrives on orders.placed as documented",
          "[orders][kafka]") {
  running_server s;
  test::kafka_test_consumer reader("orders.placed");
  auto id = test::json_field(post_order(s.port(), seed_order).body, "orderId");
  auto messages = reader.wait_for_key(id, 1, 30s);
  REQUIRE(messages.size() == 1);
  const auto& m = messages[0];
  CHECK(m.headers.at("event-type") == "OrderPlaced");
  CHECK(m.headers.at("correlation-id") == id);
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseNumbersAsStringsFlag>(m.value.c_str());
  REQUIRE(doc.IsObject());
  CHECK(std::string(doc["eventId"].GetString()) == m.headers.at("event-id"));
  CHECK(std::string(doc["eventType"].GetString()) == "OrderPlaced");
  CHECK(std::string(doc["orderId"].GetString()) == id);
  CHECK(doc.HasMember("occurredAt"));
  CHECK(std::string(doc["payload"]["orderId"].GetString()) == id);
  CHECK(std::string(doc["payload"]["totalAmount"].GetString()) == "199.99");
}

TEST_CASE("orders accepted while Kafka is down are published once it returns",
          "[orders][kafka][outage]") {
  // Their OrderPlaced has no outbox row. Sending stalled orders' events again
  // (app.saga.republish-after) is put out of reach: what arrives is the first send, held until
  // Kafka took it.
  running_server s(std::map<std::string, std::string>{{"APP_SAGA_REPUBLISH_AFTER", "600000"}});
  REQUIRE(test::run_script("./scripts/infra/kafka stop test") == 0);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto reply = post_order(s.port(), seed_order);
    CHECK(reply.status == 200);
    ids.push_back(test::json_field(reply.body, "orderId"));
  }
  REQUIRE(test::run_script("./scripts/infra/kafka start test") == 0);
  test::kafka_test_consumer reader("orders.placed");
  for (const auto& id : ids) {
    auto messages = reader.wait_for_key(id, 1, 60s);
    CHECK(messages.size() == 1);
  }
}

TEST_CASE("orders accepted while Kafka hangs are published once it answers again",
          "[orders][kafka][outage]") {
  // A broker that hangs with its connections open (a long GC pause, a broker just started)
  // leaves the events sent to it unanswered. OrderPlaced has no outbox row and, as above, the
  // sweeper is put out of reach: the events must be held until Kafka answers.
  running_server s(std::map<std::string, std::string>{{"APP_SAGA_REPUBLISH_AFTER", "600000"}});
  REQUIRE(test::run_script("./scripts/infra/kafka pause test") == 0);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto reply = post_order(s.port(), seed_order);
    CHECK(reply.status == 200);
    ids.push_back(test::json_field(reply.body, "orderId"));
  }
  // The hang's length, not a wait for something: well past the 1 s in which the events with an
  // outbox row are left to the relay.
  std::this_thread::sleep_for(4s);
  REQUIRE(test::run_script("./scripts/infra/kafka resume test") == 0);
  test::kafka_test_consumer reader("orders.placed");
  for (const auto& id : ids) {
    auto messages = reader.wait_for_key(id, 1, 60s);
    CHECK(messages.size() == 1);
  }
}

TEST_CASE("what the contract fuzzing found: NUL, byte lengths, duplicate keys, media types",
          "[orders][validation][contract]") {
  running_server s;
  auto port = s.port();
  const std::map<std::string, std::string> admin = {
      {"Authorization", "Bearer " + test::test_admin_token}};
  auto order_with = [](const std::string& fields) {
    return R"({"customerId":"cust-123","totalAmount":9.99,)" + fields +
           R"(,"items":[{"productId":"prod-789","quantity":1,"price":9.99}]})";
  };

  // U+0000 used to reach PostgreSQL ("malformed array literal": 500).
  for (
      auto [body, field] : std::vector<std::pair<std::string, std::string>>{
          {order_with(R"("shippingAddress":"a\u0000b")"), "shippingAddress"},
          {order_with(R"("paymentMethod":"pm_\u0000")"), "paymentMethod"},
          {R"({"customerId":"cust-123","totalAmount":9.99,"items":[{"productId":"prod-789","productName":"x\u0000y","quantity":1,"price":9.99}]})",
           "items[0].productName"}}) {
    auto reply = post_order(port, body);
    CHECK(reply.status == 400);
    CHECK(test::json_field(reply.body, "error") == "validation_failed");
    CHECK(test::json_field(reply.body, "field") == field);
  }

  // Admin PUTs used to store the name cut at the NUL and answer 200.
  test::put_product(port, "prod-nul", "Intact", "1.00", 5);
  auto product = test::http_call(port, "PUT", "/api/admin/products/prod-nul",
                                 R"({"name":"a\u0000bc","price":1,"stock":1})", admin);
  CHECK(product.status == 400);
  CHECK(test::json_field(product.body, "field") == "name");
  auto stored = test::http_call(port, "GET", "/api/admin/products/prod-nul", "", admin);
  CHECK(test::json_field(stored.body, "name") == "Intact");
  auto customer = test::http_call(port, "PUT", "/api/admin/customers/cust-nul",
                                  R"({"email":"n@example.com","name":"a\u0000b"})", admin);
  CHECK(customer.status == 400);
  CHECK(test::json_field(customer.body, "field") == "name");
  CHECK(test::http_call(port, "GET", "/api/admin/customers/cust-nul", "", admin).status == 404);

  // Limits are characters: 500 x "é" is a 500-character address (1000 bytes).
  std::string e500, e201;
  for (int i = 0; i < 500; ++i)
    e500 += "\xc3\xa9";
  for (int i = 0; i < 201; ++i)
    e201 += "\xc3\xa9";
  CHECK(post_order(port, order_with(R"("shippingAddress":")" + e500 + "\"")).status == 200);
  auto long_name = post_order(
      port,
      R"({"customerId":"cust-123","totalAmount":9.99,"items":[{"productId":"prod-789","productName":")" +
          e201 + R"(","quantity":1,"price":9.99}]})");
  CHECK(long_name.status == 400);
  CHECK(test::json_field(long_name.body, "field") == "items[0].productName");
  CHECK(test::http_call(port, "PUT", "/api/admin/products/prod-e",
                        R"({"name":")" + e201.substr(2) + R"(","price":1,"stock":1})", admin)
            .status == 200);

  // Which of two customerIds counts was unspecified.
  auto twice = post_order(
      port,
      R"({"customerId":"cust-123","customerId":"cust-456","totalAmount":9.99,"items":[{"productId":"prod-789","quantity":1,"price":9.99}]})");
  CHECK(twice.status == 400);
  CHECK(test::json_field(twice.body, "error") == "duplicate_key");
  CHECK(test::json_field(twice.body, "field") == "customerId");

  // Only JSON bodies are read.
  for (std::string type : {"text/plain", "application/x-www-form-urlencoded", ""}) {
    INFO(type);
    auto reply =
        test::http_call(port, "POST", "/api/orders",
                        order_with(R"("paymentMethod":"pm_card_visa")"), {{"Content-Type", type}});
    CHECK(reply.status == 415);
    CHECK(test::json_field(reply.body, "error") == "unsupported_media_type");
  }
  CHECK(test::http_call(port, "POST", "/api/orders",
                        order_with(R"("paymentMethod":"pm_card_visa")"),
                        {{"Content-Type", "application/json; charset=UTF-8"}})
            .status == 200);

  // Allow names each method once; HEAD is answered like GET; the scheme is case-insensitive.
  auto health = test::http_call(port, "POST", "/api/orders/health");
  CHECK(health.status == 405);
  CHECK(health.headers["allow"] == "GET, HEAD");
  auto head = test::http_call(port, "HEAD", "/api/orders/health");
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  CHECK(head.headers["content-length"] ==
        std::to_string(test::http_get(port, "/api/orders/health").body.size()));
  CHECK(test::http_call(port, "GET", "/api/admin/metrics", "",
                        {{"Authorization", "bearer " + test::test_admin_token}})
            .status == 200);
  auto replay = test::http_call(port, "GET", "/api/admin/dlq/replay", "", admin);
  CHECK(replay.status == 405);
  CHECK(replay.headers["allow"] == "POST");
  // The dead-letter filter takes any step's name (a program's own too) or handler:<name>,
  // and refuses what no step or handler could be called.
  for (const char* stage : {"pay", "screen", "handler:notify"})
    CHECK(test::http_call(port, "GET", std::string("/api/admin/dlq?stage=") + stage, "", admin)
              .status == 200);
  for (const char* stage : {"Pay", "handler:", "9lives", "handler:notify_me"}) {
    auto refused =
        test::http_call(port, "GET", std::string("/api/admin/dlq?stage=") + stage, "", admin);
    CHECK(refused.status == 400);
    CHECK(test::json_field(refused.body, "field") == "stage");
  }
  CHECK(test::http_get(port, "/actuator/health/readiness").status == 200);
}
