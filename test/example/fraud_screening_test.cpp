// The fraud-screening example (examples/fraud_screening/) run like the product: the real
// program against PostgreSQL, Kafka and the payment gateway simulator. Each test checks what
// a shop owner would: the order's final status and reason, the stock left, the money at the
// gateway, and the example's own rows (screenings, notifications).

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <pqxx/pqxx>
#include <sstream>

#include "support/catalog_fixture.hpp"
#include "support/http_client.hpp"
#include "support/kafka_test_consumer.hpp"
#include "support/pipeline_fixture.hpp"
#include "support/test_environment.hpp"

using namespace op;
using namespace std::chrono_literals;

namespace {

const std::map<std::string, std::string> admin = {
    {"Authorization", "Bearer " + test::test_admin_token}};

const std::string four_stages = "validate,reserve,pay,confirm";
// config/application.yml names the stages a replica runs; the example's README adds screen.
const std::string five_stages = "validate,reserve,screen,pay,confirm";

// A first order above 100.00 is suspect. app.retry.max-attempts is 1 so that the screen's
// own policy (5 retries, 200 ms doubling) is told apart from the pipeline's.
std::map<std::string, std::string> shop_settings(std::map<std::string, std::string> extra = {}) {
  extra.emplace("FRAUD_MAX_FIRST_ORDER_CENTS", "10000");
  extra.emplace("APP_RETRY_MAX_ATTEMPTS", "1");
  extra.emplace("APP_STAGES_ENABLED", five_stages);
  return extra;
}

// One statement in its own transaction on the test database.
template <class... Args>
pqxx::result sql(const std::string& statement, Args&&... args) {
  pqxx::connection connection(test::db_url());
  pqxx::work tx(connection);
  auto result = tx.exec_params(statement, std::forward<Args>(args)...);
  tx.commit();
  return result;
}

void set_risk_list_reloading(bool reloading) {
  sql("UPDATE fraud_risk_list_state SET reloading = $1, updated_at = now()", reloading);
}

// "none", "passed" or "released".
std::string screening_of(const std::string& order_id) {
  auto rows =
      sql("SELECT released_at IS NOT NULL FROM fraud_screenings WHERE order_id = $1", order_id);
  if (rows.empty())
    return "none";
  return rows[0][0].as<bool>() ? "released" : "passed";
}

struct notifications {
  std::int64_t rows = 0;
  std::int64_t repeats_refused = 0;
};
notifications notifications_of(const std::vector<std::string>& order_ids) {
  std::int64_t rows = 0, repeats = 0;
  for (const auto& id : order_ids) {
    auto r =
        sql("SELECT count(*), coalesce(sum(repeats_refused), 0) FROM order_notifications"
            " WHERE order_id = $1",
            id);
    rows += r[0][0].as<std::int64_t>();
    repeats += r[0][1].as<std::int64_t>();
  }
  return {rows, repeats};
}

// Failed runs the screen has had for the order while its retry waits; 0 when none waits.
int screen_retry_attempts(const std::string& order_id) {
  auto rows =
      sql("SELECT attempts FROM stage_retries WHERE stage = 'screen' AND order_id = $1", order_id);
  return rows.empty() ? 0 : rows[0][0].as<int>();
}

std::vector<std::string> history_statuses(unsigned short port, const std::string& id) {
  auto reply = test::http_get(port, "/api/orders/" + id + "/events");
  rapidjson::Document doc;
  doc.Parse(reply.body.c_str());
  std::vector<std::string> out;
  for (const auto& e : doc["events"].GetArray())
    out.push_back(e["status"].GetString());
  return out;
}

// Messages the stage has handled, whatever their outcome (applied, duplicate, passed on...).
double stage_messages(unsigned short port, const std::string& stage) {
  std::istringstream lines(test::http_get(port, "/metrics").body);
  std::string line;
  double total = 0;
  const auto label = fmt::format(R"(stage="{}")", stage);
  while (std::getline(lines, line))
    if (line.rfind("pipeline_messages_total{", 0) == 0 && line.find(label) != std::string::npos)
      total += std::stod(line.substr(line.rfind(' ') + 1));
  return total;
}

// The stage's dead letters for the order, through the admin API's ?stage= filter (which takes
// a shop's own step like the built-in ones), page by page.
std::vector<rapidjson::Document> dead_letters_of(unsigned short port, const std::string& stage,
                                                 const std::string& order_id) {
  std::vector<rapidjson::Document> out;
  std::string after;
  for (;;) {
    auto reply =
        test::http_call(port, "GET", "/api/admin/dlq?limit=500&stage=" + stage + after, "", admin);
    REQUIRE(reply.status == 200);
    rapidjson::Document page;
    page.Parse(reply.body.c_str());
    for (const auto& e : page["entries"].GetArray()) {
      REQUIRE(std::string(e["stage"].GetString()) == stage);
      if (std::string(e["key"].GetString()) != order_id)
        continue;
      rapidjson::Document copy;
      copy.CopyFrom(e, copy.GetAllocator());
      out.push_back(std::move(copy));
    }
    if (!page["nextAfter"].IsInt64())
      return out;
    after = "&after=" + std::to_string(page["nextAfter"].GetInt64());
  }
}

const std::vector<std::string> confirmed_history = {"PLACED", "VALIDATED", "INVENTORY_RESERVED",
                                                    "PAYMENT_PROCESSED", "CONFIRMED"};
const std::vector<std::string> cancelled_after_reserve = {"PLACED", "VALIDATED",
                                                          "INVENTORY_RESERVED", "CANCELLED"};

// The example program with its own customer; the risk list is not being reloaded.
struct fraud_shop : test::pipeline_fixture {
  explicit fraud_shop(std::map<std::string, std::string> extra = {})
      : pipeline_fixture(shop_settings(std::move(extra)), FRAUD_SCREENING_BINARY) {
    set_risk_list_reloading(false);
  }
  std::string new_customer() {
    auto id = test::unique_name("cust");
    test::put_customer(port(), id, "buyer@example.com");
    return id;
  }
};

}  // namespace

TEST_CASE("the screen cancels a first order above the limit FRAUD_SUSPECTED and passes the rest",
          "[example][screen]") {
  fraud_shop shop;
  auto product = shop.product("60.00", 10);

  // A new customer's first order of 120.00: cancelled before any money is taken.
  auto newcomer = shop.new_customer();
  auto suspect = shop.order_of(product, 2, "60.00", "120.00", "", newcomer);
  auto refused = shop.wait_final(suspect);
  CHECK(refused.status == "CANCELLED");
  CHECK(refused.reason == "FRAUD_SUSPECTED");
  CHECK(refused.detail.find("first order of 120.00 is above 100.00") != std::string::npos);
  CHECK(history_statuses(shop.port(), suspect) == cancelled_after_reserve);
  CHECK(shop.gateway.order(suspect, "chargeAttempts") == 0);
  CHECK(screening_of(suspect) == "none");

  // A first order within the limit passes; the screen has no status of its own.
  auto first = shop.order_of(product, 1, "60.00", "60.00");
  REQUIRE(shop.wait_final(first).status == "CONFIRMED");
  CHECK(history_statuses(shop.port(), first) == confirmed_history);
  CHECK(screening_of(first) == "passed");
  CHECK(shop.charged_cents(first) == 6000);

  // The same customer, now with a confirmed order, may spend more.
  auto second = shop.order_of(product, 2, "60.00", "120.00");
  REQUIRE(shop.wait_final(second).status == "CONFIRMED");
  CHECK(screening_of(second) == "passed");
  CHECK(shop.charged_cents(second) == 12000);

  // A customer on the risk list is refused whatever the amount.
  auto listed = shop.new_customer();
  sql("INSERT INTO fraud_risk_list (customer_id, note) VALUES ($1, 'chargebacks')", listed);
  auto risky = shop.order_of(product, 1, "60.00", "60.00", "", listed);
  auto risky_done = shop.wait_final(risky);
  CHECK(risky_done.status == "CANCELLED");
  CHECK(risky_done.reason == "FRAUD_SUSPECTED");
  CHECK(risky_done.detail.find("risk list") != std::string::npos);
  CHECK(shop.gateway.order(risky, "chargeAttempts") == 0);

  // The refused orders' units are back on the shelf; the confirmed ones are sold.
  auto stock = test::get_stock(shop.port(), product);
  CHECK(stock.available == 7);
  CHECK(stock.reserved == 0);
  CHECK(stock.sold == 3);
}

TEST_CASE("a payment declined after the screen releases the screening and the reservation",
          "[example][screen]") {
  fraud_shop shop;
  auto product = shop.product("40.00", 5);
  auto id = shop.order_of(product, 2, "40.00", "80.00", "pm_card_chargeDeclined");
  auto done = shop.wait_final(id);
  CHECK(done.status == "CANCELLED");
  CHECK(done.reason == "PAYMENT_DECLINED");
  CHECK(history_statuses(shop.port(), id) == cancelled_after_reserve);
  // The compensations ran back to front: the screening no longer vouches for the order and
  // the stock is back.
  CHECK(screening_of(id) == "released");
  auto stock = test::get_stock(shop.port(), product);
  CHECK(stock.available == 5);
  CHECK(stock.reserved == 0);
  CHECK(stock.sold == 0);
  CHECK(shop.charged_cents(id) == 0);
  CHECK(notifications_of({id}).rows == 0);
}

TEST_CASE("the screen's message delivered twice changes nothing", "[example][idempotency]") {
  fraud_shop shop;
  auto product = shop.product("15.00", 10);
  auto id = shop.order_of(product, 1, "15.00", "15.00");
  REQUIRE(shop.wait_final(id).status == "CONFIRMED");
  REQUIRE(test::eventually([&] { return notifications_of({id}).rows == 1; }, 30s));
  auto screened_at =
      sql("SELECT screened_at::text FROM fraud_screenings WHERE order_id = $1", id)[0][0]
          .as<std::string>();

  // The event the screen consumed, delivered again twice.
  test::kafka_test_consumer reserved("inventory.reserved");
  auto events = reserved.wait_for_key(id, 1, 30s);
  REQUIRE(events.size() == 1);
  auto handled = stage_messages(shop.port(), "screen");
  test::produce_message("inventory.reserved", events[0]);
  test::produce_message("inventory.reserved", events[0]);
  REQUIRE(
      test::eventually([&] { return stage_messages(shop.port(), "screen") >= handled + 2; }, 30s));

  CHECK(history_statuses(shop.port(), id) == confirmed_history);
  CHECK(sql("SELECT screened_at::text FROM fraud_screenings WHERE order_id = $1", id)[0][0]
            .as<std::string>() == screened_at);
  CHECK(screening_of(id) == "passed");
  CHECK(shop.gateway.order(id, "charges") == 1);
  CHECK(shop.charged_cents(id) == 1500);
  auto stock = test::get_stock(shop.port(), product);
  CHECK(stock.available == 9);
  CHECK(stock.reserved == 0);
  CHECK(stock.sold == 1);
  auto notes = notifications_of({id});
  CHECK(notes.rows == 1);
  CHECK(notes.repeats_refused == 0);
}

TEST_CASE("while the risk list is reloaded the screen retries with its own policy, then passes",
          "[example][retry]") {
  fraud_shop shop;
  auto product = shop.product("20.00", 4);
  auto scheduled = shop.metric(R"(pipeline_retries_scheduled_total{stage="screen"})");
  set_risk_list_reloading(true);
  auto id = shop.order_of(product, 1, "20.00", "20.00");
  // More failed runs than app.retry.max-attempts (1) allows: the step's own policy counts.
  REQUIRE(test::eventually([&] { return screen_retry_attempts(id) >= 3; }, 30s));
  CHECK(shop.status_of(id) == "INVENTORY_RESERVED");
  CHECK(shop.gateway.order(id, "chargeAttempts") == 0);
  set_risk_list_reloading(false);

  auto done = shop.wait_final(id);
  CHECK(done.status == "CONFIRMED");
  CHECK(screening_of(id) == "passed");
  CHECK(shop.charged_cents(id) == 2000);
  CHECK(shop.metric(R"(pipeline_retries_scheduled_total{stage="screen"})") >= scheduled + 3);
  CHECK(dead_letters_of(shop.port(), "screen", id).empty());
}

TEST_CASE("a reload that outlasts the screen's retries cancels the order and dead-letters it",
          "[example][retry][dlq]") {
  fraud_shop shop;
  auto product = shop.product("30.00", 3);
  set_risk_list_reloading(true);
  auto id = shop.order_of(product, 2, "30.00", "60.00");
  auto done = shop.wait_final(id);
  set_risk_list_reloading(false);
  CHECK(done.status == "CANCELLED");
  CHECK(done.reason == "FRAUD_SCREEN_UNAVAILABLE");
  auto stock = test::get_stock(shop.port(), product);
  CHECK(stock.available == 3);
  CHECK(stock.reserved == 0);
  CHECK(stock.sold == 0);
  CHECK(shop.gateway.order(id, "chargeAttempts") == 0);
  CHECK(screening_of(id) == "none");

  // The first run and the screen's 5 retries, 200 ms doubling: at least 6.2 s less 20 %
  // jitter between the first and the last failure (the pipeline's own policy would have
  // given up after 2 runs, about 1 s apart).
  auto entries = dead_letters_of(shop.port(), "screen", id);
  REQUIRE(entries.size() == 1);
  CHECK(std::string(entries[0]["errorClass"].GetString()) == "retries_exhausted");
  CHECK(entries[0]["attempts"].GetInt() == 6);
  CHECK(std::string(entries[0]["topic"].GetString()) == "inventory.reserved");
  CHECK(std::string(entries[0]["status"].GetString()) == "PARKED");
  auto spread = sql("SELECT extract(epoch FROM last_failure_at - first_failure_at)"
                    " FROM dead_letters WHERE stage = 'screen' AND order_id = $1",
                    id)[0][0]
                    .as<double>();
  CHECK(spread >= 4.9);

  // An operator replays it once the list is back: the saga already gave the order up, so
  // the replay is consumed and changes nothing.
  auto entry_id = entries[0]["id"].GetInt64();
  auto handled = stage_messages(shop.port(), "screen");
  auto replay = test::http_call(shop.port(), "POST",
                                fmt::format("/api/admin/dlq/{}/replay", entry_id), "", admin);
  REQUIRE(replay.status == 200);
  CHECK(replay.body.find(R"("replayed":true)") != std::string::npos);
  REQUIRE(test::eventually([&] { return stage_messages(shop.port(), "screen") > handled; }, 30s));
  auto after = dead_letters_of(shop.port(), "screen", id);
  REQUIRE(after.size() == 1);
  CHECK(std::string(after[0]["status"].GetString()) == "REPLAYED");
  auto final_view = shop.wait_final(id);
  CHECK(final_view.status == "CANCELLED");
  CHECK(final_view.reason == "FRAUD_SCREEN_UNAVAILABLE");
  CHECK(screening_of(id) == "none");
  CHECK(shop.gateway.order(id, "chargeAttempts") == 0);
  CHECK(test::get_stock(shop.port(), product).available == 3);
}

TEST_CASE("one notification per confirmed order, across redeliveries and a SIGKILL mid-stream",
          "[example][notifications]") {
  fraud_shop shop;
  auto product = shop.product("5.00", 100);
  // A slow gateway spreads the confirmations out, so the kill lands among them.
  shop.gateway.control(R"({"latencyMs":150})");
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i)
    ids.push_back(shop.order_of(product, 1, "5.00", "5.00"));
  REQUIRE(test::eventually([&] { return notifications_of(ids).rows >= 2; }, 60s));
  shop.server->kill();
  shop.gateway.control(R"({"latencyMs":0})");
  shop.restart_server();

  for (const auto& id : ids)
    CHECK(shop.wait_final(id).status == "CONFIRMED");
  CHECK(test::eventually([&] { return notifications_of(ids).rows == 12; }, 60s));
  CHECK(notifications_of(ids).repeats_refused == 0);
  auto text = sql("SELECT message FROM order_notifications WHERE order_id = $1", ids[0])[0][0]
                  .as<std::string>();
  CHECK(text == "Your order " + ids[0] + " of 5.00 is confirmed.");

  // Three OrderConfirmed events delivered again: the handler's claim drops them.
  const std::string duplicates =
      R"(pipeline_handler_events_total{handler="order-notifications",outcome="duplicate"})";
  auto dropped = shop.metric(duplicates);
  test::kafka_test_consumer confirmed("orders.confirmed");
  for (int i = 0; i < 3; ++i) {
    auto events = confirmed.wait_for_key(ids[i], 1, 30s);
    REQUIRE(events.size() == 1);
    test::produce_message("orders.confirmed", events[0]);
  }
  REQUIRE(test::eventually([&] { return shop.metric(duplicates) >= dropped + 3; }, 30s));
  auto notes = notifications_of(ids);
  CHECK(notes.rows == 12);
  CHECK(notes.repeats_refused == 0);
}

TEST_CASE("orders waiting in pay under order-pipeline finish when fraud-screening takes over",
          "[example][release]") {
  // A 5 s gateway keeps the payments in flight when the 4-step program is killed.
  test::pipeline_fixture shop{
      shop_settings({{"APP_PAYMENT_TIMEOUT", "15000"}, {"APP_STAGES_ENABLED", four_stages}})};
  auto product = shop.product("60.00", 6);
  shop.gateway.control(R"({"latencyMs":5000})");
  // Above the screen's limit for a first order: had the screen run, they would be cancelled.
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i)
    ids.push_back(shop.order_of(product, 2, "60.00", "120.00"));
  // Reserved: their sagas wait for the payment (the gateway's request count would also count
  // refunds that earlier tests left pending). One may already be paid if the consumer group
  // was still rebalancing for another; at least one must still wait at the kill.
  auto past_reserve = [&](const std::string& id) {
    auto status = shop.status_of(id);
    return status == "INVENTORY_RESERVED" || status == "PAYMENT_PROCESSED" || status == "CONFIRMED";
  };
  REQUIRE(test::eventually([&] { return std::all_of(ids.begin(), ids.end(), past_reserve); }));
  auto waiting = std::count_if(ids.begin(), ids.end(), [&](const auto& id) {
    return shop.status_of(id) == "INVENTORY_RESERVED";
  });
  REQUIRE(waiting >= 1);
  shop.server->kill();
  shop.gateway.control(R"({"latencyMs":0})");
  shop.restart_server({{"APP_STAGES_ENABLED", five_stages}}, FRAUD_SCREENING_BINARY);

  for (const auto& id : ids) {
    INFO(id);
    auto done = shop.wait_final(id);
    CHECK(done.status == "CONFIRMED");
    CHECK(shop.gateway.order(id, "charges") == 1);
    CHECK(shop.charged_cents(id) == 12000);
    // They started without a screen and keep the steps they started with.
    CHECK(screening_of(id) == "none");
  }
  auto stock = test::get_stock(shop.port(), product);
  CHECK(stock.available == 0);
  CHECK(stock.reserved == 0);
  CHECK(stock.sold == 6);
}

TEST_CASE("orders waiting in screen or pay under fraud-screening finish under order-pipeline",
          "[example][release]") {
  fraud_shop shop{{{"APP_PAYMENT_TIMEOUT", "15000"}}};
  auto product = shop.product("25.00", 4);

  // One order in pay behind a slow gateway...
  shop.gateway.control(R"({"latencyMs":5000})");
  auto paying = shop.order_of(product, 1, "25.00", "25.00");
  // Screened: its saga waits for the payment.
  REQUIRE(test::eventually([&] { return screening_of(paying) == "passed"; }, 30s));
  // ...and one held in screen by a risk list reload.
  set_risk_list_reloading(true);
  auto screening = shop.order_of(product, 2, "25.00", "50.00");
  REQUIRE(test::eventually([&] { return screen_retry_attempts(screening) >= 1; }, 30s));
  shop.server->kill();
  shop.gateway.control(R"({"latencyMs":0})");
  shop.restart_server({{"APP_STAGES_ENABLED", four_stages}}, ORDER_PIPELINE_BINARY);

  auto paid = shop.wait_final(paying);
  auto skipped = shop.wait_final(screening);
  set_risk_list_reloading(false);
  CHECK(paid.status == "CONFIRMED");
  CHECK(shop.gateway.order(paying, "charges") == 1);
  CHECK(shop.charged_cents(paying) == 2500);
  CHECK(screening_of(paying) == "passed");
  // The release no longer declares the screen: its orders go on to the payment.
  CHECK(skipped.status == "CONFIRMED");
  CHECK(shop.charged_cents(screening) == 5000);
  CHECK(screening_of(screening) == "none");
  auto stock = test::get_stock(shop.port(), product);
  CHECK(stock.available == 1);
  CHECK(stock.reserved == 0);
  CHECK(stock.sold == 3);
}
