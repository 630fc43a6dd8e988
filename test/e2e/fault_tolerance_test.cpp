// What the pipeline does when things break, checked the way an operator would: poison
// messages end up in the dead-letter queue (API and dlq.orders) without stopping their
// partition, replays are safe to repeat, a failing payment gateway is retried durably (also
// across a crash) and, when it never recovers, the order is cancelled and its stock returned,
// and a saga stuck past its deadline is compensated, also by a freshly started replica.

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <catch2/catch.hpp>
#include <pqxx/pqxx>
#include <set>
#include <sstream>
#include <thread>

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

// One sample of GET /metrics ("name{labels}"); 0 when absent.
double metric(unsigned short port, const std::string& series) {
  std::istringstream lines(test::http_get(port, "/metrics").body);
  std::string line;
  while (std::getline(lines, line))
    if (line.rfind(series + " ", 0) == 0)
      return std::stod(line.substr(series.size() + 1));
  return 0;
}

// Dead letters of one stage whose Kafka key is `key`, as the admin API lists them.
std::vector<rapidjson::Document> entries_with_key(unsigned short port, const std::string& stage,
                                                  const std::string& key) {
  auto reply = test::http_call(port, "GET", "/api/admin/dlq?limit=500&stage=" + stage, "", admin);
  REQUIRE(reply.status == 200);
  rapidjson::Document doc;
  doc.Parse(reply.body.c_str());
  std::vector<rapidjson::Document> out;
  for (const auto& e : doc["entries"].GetArray()) {
    if (std::string(e["key"].GetString()) != key)
      continue;
    rapidjson::Document copy;
    copy.CopyFrom(e, copy.GetAllocator());
    out.push_back(std::move(copy));
  }
  return out;
}

template <class Predicate>
bool eventually(Predicate done, std::chrono::seconds timeout = 30s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done())
      return true;
    std::this_thread::sleep_for(100ms);
  }
  return done();
}

constexpr int placed_partitions = 6;  // app.kafka.topics.order-placed.partitions

}  // namespace

TEST_CASE("poison pills are dead-lettered with their origin and every partition keeps flowing",
          "[fault][dlq]") {
  test::pipeline_fixture p;
  test::kafka_test_consumer dlq("dlq.orders");
  auto key = test::unique_name("poison");
  const std::string poison = "this is not an event {";
  for (int partition = 0; partition < placed_partitions; ++partition) {
    test::consumed_message m;
    m.key = key;
    m.value = poison;
    test::produce_message("orders.placed", m, partition);
  }
  // Orders placed after the poison, in whichever partitions their ids fall, still complete.
  auto product = p.product("5.00", 100);
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i)
    ids.push_back(p.order_of(product, 1, "5.00", "5.00"));
  for (const auto& id : ids)
    CHECK(p.wait_final(id).status == "CONFIRMED");

  REQUIRE(eventually([&] { return entries_with_key(p.port(), "validate", key).size() == 6; }));
  std::set<int> partitions;
  for (const auto& e : entries_with_key(p.port(), "validate", key)) {
    CHECK(std::string(e["errorClass"].GetString()) == "undecodable");
    CHECK(std::string(e["topic"].GetString()) == "orders.placed");
    CHECK(std::string(e["status"].GetString()) == "PARKED");
    CHECK(e["attempts"].GetInt() == 1);
    CHECK(e["orderId"].IsNull());
    partitions.insert(e["partition"].GetInt());
  }
  CHECK(partitions.size() == 6);

  auto letters = dlq.wait_for_key(key, 6, 30s);
  REQUIRE(letters.size() == 6);
  for (const auto& letter : letters) {
    CHECK(letter.value == poison);
    CHECK(letter.headers.at("dlq-original-topic") == "orders.placed");
    CHECK(letter.headers.at("dlq-stage") == "validate");
    CHECK(letter.headers.at("dlq-error-class") == "undecodable");
    CHECK(letter.headers.at("dlq-attempts") == "1");
    CHECK(letter.headers.count("dlq-original-offset") == 1);
    CHECK(letter.headers.count("dlq-original-partition") == 1);
    CHECK(letter.headers.count("dlq-first-failure") == 1);
    CHECK(letter.headers.count("dlq-last-failure") == 1);
    CHECK(letter.headers.count("dlq-entry-id") == 1);
  }
  CHECK(metric(p.port(), R"(dlq_messages_total{error_class="undecodable",stage="validate"})") >= 6);
}

TEST_CASE("a replay that fails again parks its entry again, and repeating a replay does nothing",
          "[fault][dlq]") {
  test::pipeline_fixture p;
  auto key = test::unique_name("poison");
  test::consumed_message m;
  m.key = key;
  m.value = "\x01\x02 not json";
  test::produce_message("orders.validated", m);
  REQUIRE(eventually([&] { return entries_with_key(p.port(), "reserve", key).size() == 1; }));
  auto id = entries_with_key(p.port(), "reserve", key)[0]["id"].GetInt64();

  auto shown = test::http_call(p.port(), "GET", fmt::format("/api/admin/dlq/{}", id), "", admin);
  REQUIRE(shown.status == 200);
  CHECK(test::json_field(shown.body, "payload") == m.value);
  CHECK(test::http_call(p.port(), "GET", "/api/admin/dlq/999999999", "", admin).status == 404);
  CHECK(test::http_call(p.port(), "GET", "/api/admin/dlq/abc", "", admin).status == 400);
  // Any step's name is a stage (a program's own too); what no step could be called is refused.
  CHECK(test::http_call(p.port(), "GET", "/api/admin/dlq?stage=Nope!", "", admin).status == 400);
  CHECK(test::http_get(p.port(), "/api/admin/dlq").status == 401);

  auto path = fmt::format("/api/admin/dlq/{}/replay", id);
  auto first = test::http_call(p.port(), "POST", path, "", admin);
  REQUIRE(first.status == 200);
  CHECK(first.body.find(R"("replayed":true)") != std::string::npos);
  // The same request again, e.g. a retried click. While the replay is on its way it does
  // nothing; once the replayed message has failed and parked the entry again (which can be
  // quicker than this request), it is a new replay of a parked entry.
  auto second = test::http_call(p.port(), "POST", path, "", admin);
  REQUIRE(second.status == 200);
  const bool replayed_again = second.body.find(R"("replayed":true)") != std::string::npos;
  CHECK((replayed_again || second.body.find(R"("replayed":false)") != std::string::npos));
  const int replays = replayed_again ? 2 : 1;

  // The replayed message fails again: the same entry is parked again, once per replay.
  REQUIRE(eventually([&] {
    auto e = entries_with_key(p.port(), "reserve", key);
    return e.size() == 1 && std::string(e[0]["status"].GetString()) == "PARKED" &&
           e[0]["replayCount"].GetInt() == replays;
  }));
  std::this_thread::sleep_for(2s);  // a loop would show up as more replays or entries
  auto settled = entries_with_key(p.port(), "reserve", key);
  REQUIRE(settled.size() == 1);
  CHECK(settled[0]["replayCount"].GetInt() == replays);
  CHECK(std::string(settled[0]["status"].GetString()) == "PARKED");

  // Bulk replay: queued, re-injected by the rate-limited replayer, parked once more.
  auto bulk = test::http_call(p.port(), "POST", "/api/admin/dlq/replay?stage=reserve", "", admin);
  REQUIRE(bulk.status == 202);
  CHECK(std::stoi(test::json_field(bulk.body, "queued")) >= 1);
  REQUIRE(eventually([&] {
    auto e = entries_with_key(p.port(), "reserve", key);
    return e.size() == 1 && e[0]["replayCount"].GetInt() == replays + 1 &&
           std::string(e[0]["status"].GetString()) == "PARKED";
  }));
}

TEST_CASE("a payment that fails transiently is retried later and charged exactly once",
          "[fault][retry]") {
  test::pipeline_fixture p{{{"APP_RETRY_BACKOFF_DELAY", "1000"}, {"APP_PAYMENT_MAX_RETRIES", "0"}}};
  auto product = p.product("12.50", 10);
  auto retries_before = metric(p.port(), R"(pipeline_retries_scheduled_total{stage="pay"})");
  p.gateway.control(R"({"failureRate":1})");
  auto id = p.order_of(product, 2, "12.50", "25.00");
  REQUIRE(eventually([&] { return p.gateway.order(id, "chargeAttempts") >= 1; }));
  p.gateway.control(R"({"failureRate":0})");

  auto done = p.wait_final(id);
  CHECK(done.status == "CONFIRMED");
  CHECK(p.gateway.order(id, "charges") == 1);
  CHECK(p.charged_cents(id) == 2500);
  CHECK(p.gateway.order(id, "chargeAttempts") >= 2);
  CHECK(metric(p.port(), R"(pipeline_retries_scheduled_total{stage="pay"})") >= retries_before + 1);
  auto stock = test::get_stock(p.port(), product);
  CHECK(stock.sold == 2);
  CHECK(stock.reserved == 0);
}

TEST_CASE("a message delivered again while its retry is pending leaves the payment to the retry",
          "[fault][retry][idempotency]") {
  // The retry is due 8-12 s later: long after the redelivery is handled.
  test::pipeline_fixture p{
      {{"APP_RETRY_BACKOFF_DELAY", "10000"}, {"APP_PAYMENT_MAX_RETRIES", "0"}}};
  auto product = p.product("4.00", 5);
  const std::string scheduled_series = R"(pipeline_retries_scheduled_total{stage="pay"})";
  const std::string duplicates_series =
      R"(pipeline_messages_total{outcome="duplicate",stage="pay"})";
  auto scheduled = metric(p.port(), scheduled_series);
  p.gateway.control(R"({"failureRate":1})");
  auto id = p.order_of(product, 1, "4.00", "4.00");
  REQUIRE(eventually([&] { return metric(p.port(), scheduled_series) > scheduled; }));
  REQUIRE(p.gateway.order(id, "chargeAttempts") == 1);

  // The pay stage's message, delivered again (a rebalance, a producer retry).
  test::kafka_test_consumer reserved("inventory.reserved");
  auto events = reserved.wait_for_key(id, 1, 30s);
  REQUIRE(events.size() == 1);
  auto duplicates = metric(p.port(), duplicates_series);
  test::produce_message("inventory.reserved", events[0]);
  REQUIRE(eventually([&] { return metric(p.port(), duplicates_series) > duplicates; }));
  CHECK(p.gateway.order(id, "chargeAttempts") == 1);
  CHECK(p.status_of(id) == "INVENTORY_RESERVED");

  p.gateway.control(R"({"failureRate":0})");
  auto done = p.wait_final(id);
  CHECK(done.status == "CONFIRMED");
  CHECK(p.gateway.order(id, "chargeAttempts") == 2);
  CHECK(p.gateway.order(id, "charges") == 1);
  CHECK(p.charged_cents(id) == 400);
}

TEST_CASE("a gateway that never recovers cancels the order, returns its stock and dead-letters it",
          "[fault][retry][dlq]") {
  // This test is about the retries running out, so the circuit breaker is kept closed: the
  // refunds that earlier tests left pending in the shared database call the same failing
  // gateway, and an open breaker would rightly hold this payment back without using up its
  // attempts (the circuit breaker tests cover that).
  test::pipeline_fixture p{{{"APP_RETRY_BACKOFF_DELAY", "200"},
                            {"APP_RETRY_MAX_ATTEMPTS", "2"},
                            {"APP_PAYMENT_MAX_RETRIES", "0"},
                            {"APP_PAYMENT_CIRCUIT_BREAKER_SLIDING_WINDOW_SIZE", "10000"},
                            {"APP_PAYMENT_CIRCUIT_BREAKER_MINIMUM_NUMBER_OF_CALLS", "10000"}}};
  auto product = p.product("3.00", 5);
  p.gateway.control(R"({"outage":true})");
  auto id = p.order_of(product, 5, "3.00", "15.00");
  auto done = p.wait_final(id);
  p.gateway.control(R"({"outage":false})");
  CHECK(done.status == "CANCELLED");
  CHECK(done.reason == "PAYMENT_FAILED");
  auto stock = test::get_stock(p.port(), product);
  CHECK(stock.available == 5);
  CHECK(stock.reserved == 0);
  CHECK(stock.sold == 0);
  CHECK(p.charged_cents(id) == 0);

  // The first run and both retries failed: three attempts, in one entry keyed by the order.
  auto entries = entries_with_key(p.port(), "pay", id);
  REQUIRE(entries.size() == 1);
  CHECK(std::string(entries[0]["errorClass"].GetString()) == "retries_exhausted");
  CHECK(entries[0]["attempts"].GetInt() == 3);
  CHECK(std::string(entries[0]["orderId"].GetString()) == id);
  CHECK(std::string(entries[0]["topic"].GetString()) == "inventory.reserved");
}

TEST_CASE("a retry pending when the replica is killed is carried out by the next one",
          "[fault][retry]") {
  test::pipeline_fixture p{{{"APP_RETRY_BACKOFF_DELAY", "4000"}, {"APP_PAYMENT_MAX_RETRIES", "0"}}};
  auto product = p.product("8.00", 3);
  auto scheduled = metric(p.port(), R"(pipeline_retries_scheduled_total{stage="pay"})");
  p.gateway.control(R"({"failureRate":1})");
  auto id = p.order_of(product, 1, "8.00", "8.00");
  REQUIRE(eventually([&] {
    return metric(p.port(), R"(pipeline_retries_scheduled_total{stage="pay"})") > scheduled;
  }));
  // The Kafka offset has moved on: only the database remembers the retry.
  p.server->kill();
  p.gateway.control(R"({"failureRate":0})");
  p.restart_server();

  auto done = p.wait_final(id);
  CHECK(done.status == "CONFIRMED");
  CHECK(p.gateway.order(id, "charges") == 1);
  CHECK(p.charged_cents(id) == 800);
}

TEST_CASE("orders whose next event was lost are sent on after app.saga.republish-after",
          "[fault][republish]") {
  // A running saga's events go to Kafka right after the commit, without an outbox row. Two
  // orders are written as a replica that crashed before Kafka took their events leaves them:
  // one placed, one with its stock reserved, and neither event in Kafka.
  test::pipeline_fixture p{{{"APP_SAGA_REPUBLISH_AFTER", "2000"}}};
  auto product = p.product("6.00", 5);
  const auto placed = test::unique_name("ORD-LOST-PLACED");
  const auto reserved = test::unique_name("ORD-LOST-RESERVED");
  {
    pqxx::connection db(test::db_url());
    pqxx::work tx(db);
    auto list = tx.exec1(
                      "SELECT id FROM saga_step_lists"
                      " WHERE steps = '{validate,reserve,pay,confirm}'")[0]
                    .as<int>();
    auto write_order = [&](const std::string& id, const std::string& status, int step_index,
                           const std::string& owed, const std::string& history) {
      tx.exec_params(
          "INSERT INTO orders (order_id, customer_id, payment_method, total_cents, status,"
          " created_at, updated_at, step_list, step_index, owed, step_started_at, history,"
          " items)"
          " VALUES ($1, $2, 'pm_card_visa', 600, $3, now() - interval '5 seconds',"
          " now() - interval '5 seconds', $4, $5, $6::text[], now() - interval '5 seconds',"
          " (SELECT array_agg(ROW(s, NULL, NULL, now())::order_history_entry"
          " ORDER BY n DESC) FROM unnest($7::text[]) WITH ORDINALITY AS h (s, n)),"
          " ARRAY[ROW($8::text, 'Widget', 1, 600)::order_line])",
          id, p.customer, status, list, step_index, owed, history, product);
      tx.exec_params(
          "INSERT INTO running_sagas (order_id, created_at)"
          " VALUES ($1, now() - interval '5 seconds')",
          id);
    };
    write_order(placed, "PLACED", 0, "{}", "{PLACED}");
    write_order(reserved, "INVENTORY_RESERVED", 2, "{reserve}",
                "{PLACED,VALIDATED,INVENTORY_RESERVED}");
    tx.exec_params(
        "UPDATE products SET available = available - 1, reserved = reserved + 1"
        " WHERE product_id = $1",
        product);
    tx.commit();
  }

  CHECK(p.wait_final(placed).status == "CONFIRMED");
  CHECK(p.wait_final(reserved).status == "CONFIRMED");
  CHECK(p.gateway.order(placed, "charges") == 1);
  CHECK(p.gateway.order(reserved, "charges") == 1);
  CHECK(p.charged_cents(reserved) == 600);
  auto stock = test::get_stock(p.port(), product);
  CHECK(stock.available == 3);
  CHECK(stock.reserved == 0);
  CHECK(stock.sold == 2);
  {
    // An ended saga is no longer among the running ones the sweeper reads.
    pqxx::connection db(test::db_url());
    pqxx::work tx(db);
    CHECK(tx.exec_params1("SELECT count(*) FROM running_sagas WHERE order_id IN ($1, $2)", placed,
                          reserved)[0]
              .as<int>() == 0);
  }
  CHECK(p.metric(R"(saga_events_republished_total{step="validate"})") >= 1);
  CHECK(p.metric(R"(saga_events_republished_total{step="pay"})") >= 1);

  // What was sent again is the event the step consumes, as the writer would have sent it.
  test::kafka_test_consumer placed_topic("orders.placed");
  auto events = placed_topic.wait_for_key(placed, 1, 30s);
  REQUIRE(events.size() >= 1);
  rapidjson::Document event;
  event.Parse(events[0].value.c_str());
  REQUIRE(event.IsObject());
  CHECK(std::string(event["eventType"].GetString()) == "OrderPlaced");
  CHECK(std::string(event["payload"]["status"].GetString()) == "PLACED");
  CHECK(std::string(event["payload"]["orderId"].GetString()) == placed);
  CHECK(event["payload"]["items"].GetArray().Size() == 1);
}

TEST_CASE("a saga past its payment deadline is cancelled by a freshly started replica",
          "[fault][deadline]") {
  // The first replica keeps the order waiting for its payment (retries far apart); it dies,
  // and its successor, configured with a short payment deadline, compensates the order
  // without any new traffic.
  test::pipeline_fixture p{
      {{"APP_RETRY_BACKOFF_DELAY", "60000"}, {"APP_PAYMENT_MAX_RETRIES", "0"}}};
  auto product = p.product("20.00", 4);
  p.gateway.control(R"({"outage":true})");
  auto id = p.order_of(product, 2, "20.00", "40.00");
  REQUIRE(eventually([&] { return p.status_of(id) == "INVENTORY_RESERVED"; }));
  REQUIRE(eventually([&] { return metric(p.port(), "pipeline_retries_pending") >= 1; }));
  p.server->kill();
  std::this_thread::sleep_for(1500ms);
  p.restart_server({{"APP_SAGA_DEADLINE_PAYMENT", "1000"}, {"APP_SAGA_SWEEP_INTERVAL", "200"}});

  auto done = p.wait_final(id, 30s);
  p.gateway.control(R"({"outage":false})");
  CHECK(done.status == "CANCELLED");
  CHECK(done.reason == "PAYMENT_TIMEOUT");
  auto stock = test::get_stock(p.port(), product);
  CHECK(stock.available == 4);
  CHECK(stock.reserved == 0);
  CHECK(metric(p.port(), R"(saga_deadlines_expired_total{step="pay"})") >= 1);
}

TEST_CASE("a charge that lands after the payment deadline is refunded", "[fault][deadline]") {
  test::pipeline_fixture p{{{"APP_SAGA_DEADLINE_PAYMENT", "1000"},
                            {"APP_SAGA_SWEEP_INTERVAL", "200"},
                            {"APP_PAYMENT_TIMEOUT", "10000"}}};
  // The pay stage must hold its partitions before the order comes: a replica an earlier test
  // killed keeps some of them until its session ends, and the 1 s deadline would then cancel
  // the order before any charge was made.
  REQUIRE(eventually(
      [&] {
        auto reply = test::http_get(
            p.port(), "/actuator/metrics/kafka.consumer.lag?tag=topic:inventory.reserved");
        rapidjson::Document doc;
        doc.Parse(reply.body.c_str());
        if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("availableTags"))
          return false;
        for (const auto& tag : doc["availableTags"].GetArray())
          if (std::string(tag["tag"].GetString()) == "partition")
            return tag["values"].Size() == 6;
        return false;
      },
      30s));
  auto product = p.product("9.99", 2);
  p.gateway.control(R"({"latencyMs":3000})");
  auto id = p.order_of(product, 1, "9.99", "9.99");
  auto done = p.wait_final(id, 30s);
  CHECK(done.status == "CANCELLED");
  CHECK(done.reason == "PAYMENT_TIMEOUT");
  // The slow charge succeeds at the gateway after the cancellation; the money goes back.
  REQUIRE(eventually([&] { return p.gateway.order(id, "charges") == 1; }, 20s));
  CHECK(eventually([&] { return p.charged_cents(id) == 0; }, 30s));
  p.gateway.control(R"({"latencyMs":0})");
  auto stock = test::get_stock(p.port(), product);
  CHECK(stock.available == 2);
  CHECK(stock.sold == 0);
}
