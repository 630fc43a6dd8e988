// POST /api/orders/{id}/cancel through the whole pipeline: the real server, PostgreSQL, Kafka
// and the payment gateway simulator. Each test checks what the shop and its customer see:
// the answer, the order's final status and reason, the stock, and the money at the gateway.

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <mutex>
#include <random>
#include <thread>

#include "support/catalog_fixture.hpp"
#include "support/http_client.hpp"
#include "support/pipeline_fixture.hpp"
#include "support/test_environment.hpp"

using namespace op;
using namespace std::chrono_literals;

namespace {

using test::eventually;

using pipeline = test::pipeline_fixture;

test::http_reply cancel(unsigned short port, const std::string& id) {
  return test::http_call(port, "POST", "/api/orders/" + id + "/cancel");
}

// The status the order left when it was cancelled, from its history.
std::string cancelled_from(unsigned short port, const std::string& id) {
  auto body = test::http_get(port, "/api/orders/" + id + "/events").body;
  auto end = body.rfind(R"("status":"CANCELLED")");
  auto before = body.rfind(R"("status":")", end == std::string::npos ? 0 : end - 1);
  if (end == std::string::npos || before == std::string::npos)
    return "";
  auto start = before + 10;
  return body.substr(start, body.find('"', start) - start);
}

}  // namespace

TEST_CASE("a cancel before the payment gives the stock back and charges nothing", "[cancel]") {
  pipeline p;
  auto product = p.product("4.00", 30);
  // No charge can be taken: whichever step the cancel meets, nothing may be charged.
  p.gateway.control(R"({"outage":true})");
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i)
    ids.push_back(p.order_of(product, 2, "4.00", "8.00"));
  for (const auto& id : ids) {
    INFO(id);
    auto answer = cancel(p.port(), id);
    INFO(answer.body);
    auto done = p.wait_final(id);
    CHECK(done.status == "CANCELLED");
    CHECK(done.reason == "CUSTOMER_CANCELLED");
    CHECK(test::json_field(answer.body, "status") == "CANCELLED");
    CHECK(test::json_field(answer.body, "reason") == "CUSTOMER_CANCELLED");
    // 200 when nothing could have been charged yet; 202 when the order already waited for
    // its payment, whose charge might have been in flight: a refund is requested.
    auto from = cancelled_from(p.port(), id);
    if (from == "PLACED" || from == "VALIDATED")
      CHECK(answer.status == 200);
    else
      CHECK((from == "INVENTORY_RESERVED" && answer.status == 202));
  }
  p.gateway.control(R"({"outage":false})");  // the gateway's ledger is readable again
  for (const auto& id : ids)
    CHECK(p.gateway.order(id, "capturedCents") == 0);
  auto stock = test::get_stock(p.port(), product);
  CHECK(stock.available == 30);
  CHECK(stock.reserved == 0);
  CHECK(stock.sold == 0);
}

TEST_CASE("a cancel while the payment is being charged refunds the charge", "[cancel]") {
  pipeline p;
  auto product = p.product("15.00", 10);
  p.gateway.control(R"({"latencyMs":3000})");
  auto id = p.order_of(product, 2, "15.00", "30.00");
  // Waiting for its payment, with the pay step's message in hand: the charge is on its way
  // to the gateway, which answers 3 s later.
  REQUIRE(eventually([&] {
    return p.status_of(id) == "INVENTORY_RESERVED" && p.metric("pipeline_messages_in_flight") >= 1;
  }));
  auto answer = cancel(p.port(), id);
  INFO(answer.body);
  CHECK(answer.status == 202);
  CHECK(test::json_field(answer.body, "status") == "CANCELLED");
  CHECK(test::json_field(answer.body, "reason") == "CUSTOMER_CANCELLED");
  p.gateway.control(R"({"latencyMs":0})");  // the charge in flight keeps its 3 s

  // The charge still lands at the gateway, and the refund gives all of it back.
  CHECK(eventually([&] { return p.gateway.order(id, "capturedCents") == 3000; }));
  CHECK(eventually([&] { return p.gateway.order(id, "refundedCents") == 3000; }));
  CHECK(p.gateway.order(id, "charges") == 1);
  auto done = p.wait_final(id);
  CHECK(done.status == "CANCELLED");
  CHECK(done.reason == "CUSTOMER_CANCELLED");
  auto stock = test::get_stock(p.port(), product);
  CHECK(stock.available == 10);
  CHECK(stock.reserved == 0);
  CHECK(stock.sold == 0);

  // Asked again: the same answer, and nothing more is refunded.
  auto again = cancel(p.port(), id);
  CHECK(again.status == 202);
  CHECK(again.body == answer.body);
  CHECK(p.gateway.order(id, "refundedCents") == 3000);
}

TEST_CASE("a confirmed order cannot be cancelled: 409 with its status, every time", "[cancel]") {
  pipeline p;
  auto product = p.product("9.00", 5);
  auto id = p.order_of(product, 1, "9.00", "9.00");
  REQUIRE(p.wait_final(id).status == "CONFIRMED");
  for (int i = 0; i < 2; ++i) {
    auto answer = cancel(p.port(), id);
    INFO(answer.body);
    CHECK(answer.status == 409);
    CHECK(test::json_field(answer.body, "error") == "order_not_cancellable");
    CHECK(test::json_field(answer.body, "status") == "CONFIRMED");
  }
  CHECK(p.status_of(id) == "CONFIRMED");
  CHECK(p.charged_cents(id) == 900);
  CHECK(test::get_stock(p.port(), product).sold == 1);

  // An order cancelled for another reason stays as it is too.
  auto declined = p.order_of(product, 1, "9.00", "9.00", "pm_card_chargeDeclined");
  REQUIRE(p.wait_final(declined).reason == "PAYMENT_DECLINED");
  auto answer = cancel(p.port(), declined);
  CHECK(answer.status == 409);
  CHECK(test::json_field(answer.body, "status") == "CANCELLED");
  CHECK(p.wait_final(declined).reason == "PAYMENT_DECLINED");
}

TEST_CASE("cancelling twice answers the same", "[cancel]") {
  pipeline p;
  auto product = p.product("3.00", 10);
  p.gateway.control(R"({"outage":true})");
  auto id = p.order_of(product, 1, "3.00", "3.00");
  auto first = cancel(p.port(), id);
  REQUIRE((first.status == 200 || first.status == 202));
  auto second = cancel(p.port(), id);
  CHECK(second.status == first.status);
  CHECK(second.body == first.body);
  CHECK(p.wait_final(id).reason == "CUSTOMER_CANCELLED");
  CHECK(cancel(p.port(), "ORD-NOSUCHORDER").status == 404);
}

TEST_CASE("cancels racing the pay step: one outcome per order, money and stock reconcile",
          "[cancel][concurrency]") {
  pipeline p;
  const int orders = 100;
  const std::int64_t initial = 1000;
  auto product = p.product("2.00", initial);
  // Orders flow (a server that joins the tests' consumer group after a killed one gets its
  // partitions when the group rebalances, up to 10 s later).
  auto warm_up = p.order_of(product, 1, "2.00", "2.00");
  REQUIRE(p.wait_final(warm_up).status == "CONFIRMED");
  // Every charge is in flight for 100-300 ms; the cancels come 0-500 ms after placement:
  // before, during and after the charge.
  p.gateway.control(R"({"latencyMs":100,"jitterMs":200})");

  struct race {
    std::string id;
    int answer = 0;
    std::string body;
  };
  std::vector<race> races(orders);
  std::vector<std::thread> threads;
  const int per_thread = 10;
  for (int t = 0; t < orders / per_thread; ++t)
    threads.emplace_back([&, t] {
      std::mt19937 random(static_cast<unsigned>(t) * 7919u + 1u);
      for (int i = t * per_thread; i < (t + 1) * per_thread; ++i) {
        auto placed = test::http_call(
            p.port(), "POST", "/api/orders",
            fmt::format(
                R"({{"customerId":"{}","totalAmount":2.00,"items":[{{"productId":"{}","quantity":1,"price":2.00}}]}})",
                p.customer, product));
        races[i].id = test::json_field(placed.body, "orderId");
        // The race's random moment, not a wait for a condition.
        std::this_thread::sleep_for(std::chrono::milliseconds(random() % 500));
        auto answer = cancel(p.port(), races[i].id);
        races[i].answer = answer.status;
        races[i].body = answer.body;
      }
    });
  for (auto& t : threads)
    t.join();
  // Every cancel is answered: the races are decided. Reading the ledger needs no delay (the
  // charges in flight keep theirs).
  p.gateway.control(R"({"latencyMs":0,"jitterMs":0})");

  int confirmed = 0, cancelled = 0;
  for (const auto& r : races) {
    INFO(r.id << " answered " << r.answer << " " << r.body);
    REQUIRE_FALSE(r.id.empty());
    auto done = p.wait_final(r.id);
    if (r.answer == 409) {
      CHECK(test::json_field(r.body, "status") == "CONFIRMED");
      CHECK(done.status == "CONFIRMED");
      ++confirmed;
    } else {
      CHECK((r.answer == 200 || r.answer == 202));
      CHECK(done.status == "CANCELLED");
      CHECK(done.reason == "CUSTOMER_CANCELLED");
      ++cancelled;
    }
    CHECK(p.gateway.order(r.id, "charges") <= 1);
  }
  CHECK(confirmed + cancelled == orders);

  // The refunds of charges that landed after their cancel go out asynchronously.
  auto net_charged = [&] {
    std::int64_t total = 0;
    for (const auto& r : races)
      total += p.charged_cents(r.id);
    return total;
  };
  CHECK(eventually([&] { return net_charged() == confirmed * 200; }, 120s));
  CHECK(net_charged() == confirmed * 200);
  int refunded = 0, answered_200 = 0;
  for (const auto& r : races) {
    INFO(r.id);
    CHECK(p.charged_cents(r.id) == (r.answer == 409 ? 200 : 0));
    if (r.answer != 409 && p.gateway.order(r.id, "capturedCents") > 0)
      ++refunded;  // charged, then given back
    answered_200 += r.answer == 200 ? 1 : 0;
  }
  auto stock = test::get_stock(p.port(), product);
  CHECK(stock.available + stock.reserved + stock.sold == initial);
  CHECK(stock.reserved == 0);
  CHECK(stock.sold == confirmed + 1);  // and the warm-up order
  WARN(
      fmt::format("{} races: {} confirmed before their cancel (409), {} cancelled ({} with 200, "
                  "{} with 202), of which {} charged and refunded",
                  orders, confirmed, cancelled, answered_200, cancelled - answered_200, refunded));
}
