// Orders through the whole pipeline: the real server, PostgreSQL, Kafka and the payment
// gateway simulator. Each test checks what a shop owner would: the final status and reason,
// the stock left, and the money charged at the gateway.

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <catch2/catch.hpp>
#include <thread>

#include "support/catalog_fixture.hpp"
#include "support/http_client.hpp"
#include "support/kafka_test_consumer.hpp"
#include "support/pipeline_fixture.hpp"
#include "support/server_process.hpp"
#include "support/simulator_process.hpp"
#include "support/test_environment.hpp"

using namespace op;
using namespace std::chrono_literals;

namespace {

using pipeline = test::pipeline_fixture;

std::vector<std::string> history_statuses(unsigned short port, const std::string& id) {
  auto reply = test::http_get(port, "/api/orders/" + id + "/events");
  rapidjson::Document doc;
  doc.Parse(reply.body.c_str());
  std::vector<std::string> out;
  for (const auto& e : doc["events"].GetArray())
    out.push_back(e["status"].GetString());
  return out;
}

}  // namespace

TEST_CASE("the seed's example order is confirmed, its stock sold and its money taken once",
          "[saga]") {
  pipeline p;
  test::put_customer(p.port(), "cust-123", "john@example.com");
  test::put_product(p.port(), "prod-456", "Wireless Headphones", "199.99", 1000000);
  auto before = test::get_stock(p.port(), "prod-456");
  auto id = p.place(R"({
    "customerId": "cust-123", "customerEmail": "john@example.com", "totalAmount": 199.99,
    "shippingAddress": "123 Main St, City, Country",
    "items": [{"productId": "prod-456", "productName": "Wireless Headphones", "quantity": 1,
               "price": 199.99}]})");
  auto done = p.wait_final(id);
  CHECK(done.status == "CONFIRMED");
  CHECK(history_statuses(p.port(), id) ==
        std::vector<std::string>{"PLACED", "VALIDATED", "INVENTORY_RESERVED", "PAYMENT_PROCESSED",
                                 "CONFIRMED"});
  // Other tests' orders may be selling prod-456 meanwhile: check that this sale happened and
  // that no unit appeared or vanished.
  auto after = test::get_stock(p.port(), "prod-456");
  CHECK(after.sold >= before.sold + 1);
  CHECK(after.available + after.reserved + after.sold ==
        before.available + before.reserved + before.sold);
  CHECK(p.gateway.order(id, "charges") == 1);
  CHECK(p.charged_cents(id) == 19999);

  test::kafka_test_consumer confirmed("orders.confirmed");
  auto messages = confirmed.wait_for_key(id, 1, 30s);
  REQUIRE(messages.size() == 1);
  CHECK(messages[0].headers.at("event-type") == "OrderConfirmed");
  CHECK(messages[0].value.find(R"("status":"CONFIRMED")") != std::string::npos);
}

TEST_CASE("invalid orders end CANCELLED/VALIDATION_FAILED with nothing reserved or charged",
          "[saga]") {
  pipeline p;
  auto product = p.product("10.00", 50);
  auto inactive_product = p.product("10.00", 50, false);
  auto inactive_customer = test::unique_name("cust-off");
  test::put_customer(p.port(), inactive_customer, "off@example.com", false);

  struct invalid_case {
    std::string name;
    std::string id;
    std::string detail_part;
  };
  std::vector<invalid_case> cases = {
      {"unknown product", p.order_of("no-such-product", 1, "10.00", "10.00"), "does not exist"},
      {"inactive product", p.order_of(inactive_product, 1, "10.00", "10.00"), "not active"},
      {"wrong price", p.order_of(product, 1, "9.00", "9.00"), "catalog price"},
      {"wrong total", p.order_of(product, 2, "10.00", "10.00"), "totalAmount"},
      {"inactive customer", p.order_of(product, 1, "10.00", "10.00", "", inactive_customer),
       "not active"},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    auto done = p.wait_final(c.id);
    CHECK(done.status == "CANCELLED");
    CHECK(done.reason == "VALIDATION_FAILED");
    CHECK(done.detail.find(c.detail_part) != std::string::npos);
    CHECK(p.gateway.order(c.id, "charges") == 0);
  }
  auto stock = test::get_stock(p.port(), product);
  CHECK(stock.available == 50);
  CHECK(stock.reserved == 0);
  CHECK(stock.sold == 0);
}

TEST_CASE("an order beyond the stock ends CANCELLED/OUT_OF_STOCK, all items or none", "[saga]") {
  pipeline p;
  auto plenty = p.product("5.00", 100);
  auto scarce = p.product("7.00", 1);
  auto id = p.place(fmt::format(
      R"({{"customerId":"{}","totalAmount":24.00,"items":[{{"productId":"{}","quantity":2,"price":5.00}},{{"productId":"{}","quantity":2,"price":7.00}}]}})",
      p.customer, plenty, scarce));
  auto done = p.wait_final(id);
  CHECK(done.status == "CANCELLED");
  CHECK(done.reason == "OUT_OF_STOCK");
  CHECK(p.gateway.order(id, "charges") == 0);
  // The available item was not kept reserved either.
  auto a = test::get_stock(p.port(), plenty);
  CHECK(a.available == 100);
  CHECK(a.reserved == 0);
  CHECK(a.sold == 0);
  auto b = test::get_stock(p.port(), scarce);
  CHECK(b.available == 1);
  CHECK(b.reserved == 0);
  CHECK(b.sold == 0);
}

TEST_CASE("declined payments end CANCELLED/PAYMENT_DECLINED with the reservation released",
          "[saga]") {
  pipeline p;
  auto product = p.product("25.00", 10);
  auto declined = p.order_of(product, 2, "25.00", "50.00", "pm_card_chargeDeclined");
  auto no_funds =
      p.order_of(product, 1, "25.00", "25.00", "pm_card_chargeDeclinedInsufficientFunds");
  auto first = p.wait_final(declined);
  CHECK(first.status == "CANCELLED");
  CHECK(first.reason == "PAYMENT_DECLINED");
  auto second = p.wait_final(no_funds);
  CHECK(second.reason == "PAYMENT_DECLINED");
  CHECK(second.detail.find("insufficient_funds") != std::string::npos);
  CHECK(history_statuses(p.port(), declined) ==
        std::vector<std::string>{"PLACED", "VALIDATED", "INVENTORY_RESERVED", "CANCELLED"});
  auto stock = test::get_stock(p.port(), product);
  CHECK(stock.available == 10);
  CHECK(stock.reserved == 0);
  CHECK(stock.sold == 0);
  CHECK(p.charged_cents(declined) == 0);
  CHECK(p.charged_cents(no_funds) == 0);
}

TEST_CASE("concurrent orders for the last units: exactly as many confirmed as there were units",
          "[saga][concurrency]") {
  pipeline p;
  const int units = 5;
  const int buyers = 25;
  auto product = p.product("3.50", units);
  const auto body = p.order_body(product, 1, "3.50", "3.50");
  std::vector<test::http_reply> replies(buyers);
  std::vector<std::thread> threads;
  for (int i = 0; i < buyers; ++i)
    threads.emplace_back(
        [&, i] { replies[i] = test::http_call(p.port(), "POST", "/api/orders", body); });
  for (auto& t : threads)
    t.join();
  std::vector<std::string> ids;
  for (const auto& reply : replies) {
    INFO(reply.body);
    REQUIRE(reply.status == 200);
    ids.push_back(test::json_field(reply.body, "orderId"));
  }

  int confirmed = 0, out_of_stock = 0;
  std::int64_t confirmed_cents = 0, charged = 0;
  for (const auto& id : ids) {
    auto done = p.wait_final(id);
    if (done.status == "CONFIRMED") {
      ++confirmed;
      confirmed_cents += 350;
    }
    if (done.reason == "OUT_OF_STOCK")
      ++out_of_stock;
    charged += p.charged_cents(id);
  }
  CHECK(confirmed == units);
  CHECK(out_of_stock == buyers - units);
  auto stock = test::get_stock(p.port(), product);
  CHECK(stock.available == 0);
  CHECK(stock.reserved == 0);
  CHECK(stock.sold == units);
  // captured - refunded at the gateway = the sum of the CONFIRMED totals
  CHECK(charged == confirmed_cents);
}

TEST_CASE("the same event delivered twice, and an old event delivered late, change nothing",
          "[saga][idempotency]") {
  pipeline p;
  auto product = p.product("12.00", 20);
  auto id = p.order_of(product, 1, "12.00", "12.00");
  REQUIRE(p.wait_final(id).status == "CONFIRMED");
  auto history_before = history_statuses(p.port(), id);

  // Read the order's real events back from Kafka and deliver them again: the OrderPlaced
  // event (a duplicate) and the InventoryReserved event (now out of order: the order is
  // already CONFIRMED).
  test::kafka_test_consumer placed("orders.placed");
  test::kafka_test_consumer reserved("inventory.reserved");
  auto placed_events = placed.wait_for_key(id, 1, 30s);
  auto reserved_events = reserved.wait_for_key(id, 1, 30s);
  REQUIRE(placed_events.size() == 1);
  REQUIRE(reserved_events.size() == 1);
  test::produce_message("orders.placed", placed_events[0]);
  test::produce_message("orders.placed", placed_events[0]);
  test::produce_message("inventory.reserved", reserved_events[0]);

  // A later order on the same partitions is processed after the duplicates: once it is
  // final, the duplicates have been consumed.
  auto marker = p.order_of(product, 1, "12.00", "12.00");
  REQUIRE(p.wait_final(marker).status == "CONFIRMED");
  std::this_thread::sleep_for(1s);

  CHECK(history_statuses(p.port(), id) == history_before);
  CHECK(p.gateway.order(id, "charges") == 1);
  CHECK(p.charged_cents(id) == 1200);
  auto stock = test::get_stock(p.port(), product);
  CHECK(stock.available == 18);
  CHECK(stock.reserved == 0);
  CHECK(stock.sold == 2);
}
