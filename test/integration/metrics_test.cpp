// GET /metrics and the Actuator metrics endpoints of a running pipeline.

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "support/catalog_fixture.hpp"
#include "support/http_client.hpp"
#include "support/server_process.hpp"
#include "support/simulator_process.hpp"
#include "support/test_environment.hpp"

using namespace op;
using namespace std::chrono_literals;

namespace {

std::string scrape(unsigned short port) {
  auto reply = test::http_get(port, "/metrics");
  REQUIRE(reply.status == 200);
  CHECK(reply.headers["content-type"].rfind("text/plain; version=0.0.4", 0) == 0);
  return reply.body;
}

const std::vector<std::string> stage_topics = {"orders.placed", "orders.validated",
                                               "inventory.reserved", "payments.processed"};
constexpr int partitions_per_topic = 6;

// What /actuator/metrics/kafka.consumer.lag says of one topic: the partitions this replica
// holds and measured, and their summed lag.
struct topic_lag {
  std::size_t partitions = 0;
  double lag = -1;
};
topic_lag lag_of(unsigned short port, const std::string& topic) {
  auto reply = test::http_get(port, "/actuator/metrics/kafka.consumer.lag?tag=topic:" + topic);
  rapidjson::Document doc;
  doc.Parse(reply.body.c_str());
  topic_lag out;
  if (doc.HasParseError() || !doc.IsObject())
    return out;
  out.lag = doc["measurements"][0]["value"].GetDouble();
  for (const auto& tag : doc["availableTags"].GetArray())
    if (std::string(tag["tag"].GetString()) == "partition")
      out.partitions = tag["values"].Size();
  return out;
}

// True when this replica holds every partition of every stage topic and has consumed them
// all. Until a killed replica's session expires (10 s), the group may give a new replica only
// part of the partitions, and the rest (with what the killed one left unfinished) later.
bool everything_consumed(unsigned short port) {
  for (const auto& topic : stage_topics) {
    auto measured = lag_of(port, topic);
    if (measured.partitions != partitions_per_topic || measured.lag != 0)
      return false;
  }
  return true;
}

// Waits until no message is in flight, everything is consumed, no retry is pending (earlier
// tests leave payments to retry, which this server's gateway then carries out) and the
// outbox is empty, twice in a row: lag and backlog are re-measured every 2 s and 1 s.
void settle(unsigned short port) {
  auto deadline = std::chrono::steady_clock::now() + 90s;
  int quiet = 0;
  while (quiet < 2 && std::chrono::steady_clock::now() < deadline) {
    auto text = scrape(port);
    bool idle = test::metric_sample(text, "pipeline_messages_in_flight") == 0 &&
                test::metric_sample(text, "pipeline_retries_pending") == 0 &&
                test::metric_sample(text, "outbox_backlog_events") == 0 &&
                everything_consumed(port);
    quiet = idle ? quiet + 1 : 0;
    std::this_thread::sleep_for(2500ms);
  }
  REQUIRE(quiet == 2);
}

std::string final_status(unsigned short port, const std::string& id) {
  auto deadline = std::chrono::steady_clock::now() + 60s;
  std::string status;
  while (std::chrono::steady_clock::now() < deadline) {
    status = test::json_field(test::http_get(port, "/api/orders/" + id).body, "status");
    if (status == "CONFIRMED" || status == "CANCELLED" || status == "FAILED")
      break;
    std::this_thread::sleep_for(50ms);
  }
  return status;
}

}  // namespace

TEST_CASE("counters and histograms move by exactly what the orders did, and promtool accepts them",
          "[metrics]") {
  test::simulator_process gateway;
  // Earlier tests leave orders whose events a stopped Kafka lost: this server does not send
  // them again (app.saga.republish-after) while it counts, or they would count here.
  test::server_process server(
      {{"PAYMENT_GATEWAY_URL", gateway.url()}, {"APP_SAGA_REPUBLISH_AFTER", "3600000"}});
  server.start();
  server.wait_until_ready();
  auto port = server.port();
  auto customer = test::unique_name("cust-metrics");
  auto product = test::unique_name("prod-metrics");
  test::put_customer(port, customer, "metrics@example.com");
  test::put_product(port, product, "Gauge", "2.00", 100);
  settle(port);
  auto before = scrape(port);

  auto order = [&](const std::string& payment_method) {
    auto reply = test::http_call(
        port, "POST", "/api/orders",
        fmt::format(
            R"({{"customerId":"{}","paymentMethod":"{}","totalAmount":2.00,"items":[{{"productId":"{}","quantity":1,"price":2.00}}]}})",
            customer, payment_method, product));
    REQUIRE(reply.status == 200);
    return test::json_field(reply.body, "orderId");
  };
  std::vector<std::string> ids = {order("pm_card_visa"), order("pm_card_visa"),
                                  order("pm_card_chargeDeclined")};
  CHECK(final_status(port, ids[0]) == "CONFIRMED");
  CHECK(final_status(port, ids[1]) == "CONFIRMED");
  CHECK(final_status(port, ids[2]) == "CANCELLED");
  CHECK(test::http_call(port, "POST", "/api/orders", "{bad json").status == 400);
  settle(port);
  auto after = scrape(port);

  auto delta = [&](const std::string& series) {
    return test::metric_sample(after, series) - test::metric_sample(before, series);
  };
  CHECK(delta("orders_placed_total") == 3);
  CHECK(delta("orders_confirmed_total") == 2);
  CHECK(delta(R"(orders_cancelled_total{reason="PAYMENT_DECLINED"})") == 1);
  CHECK(delta(R"(order_end_to_end_seconds_count{status="CONFIRMED"})") == 2);
  CHECK(delta(R"(order_end_to_end_seconds_bucket{status="CONFIRMED",le="+Inf"})") == 2);
  CHECK(delta(R"(order_end_to_end_seconds_count{status="CANCELLED"})") == 1);
  CHECK(delta(R"(http_server_requests_total{method="POST",route="/api/orders",status="200"})") ==
        3);
  CHECK(delta(R"(http_server_requests_total{method="POST",route="/api/orders",status="400"})") ==
        1);
  CHECK(delta(R"(pipeline_messages_total{outcome="applied",stage="validate"})") == 3);
  CHECK(delta(R"(pipeline_messages_total{outcome="applied",stage="reserve"})") == 3);
  CHECK(delta(R"(pipeline_messages_total{outcome="applied",stage="pay"})") == 3);
  CHECK(delta(R"(pipeline_messages_total{outcome="applied",stage="confirm"})") == 2);
  CHECK(delta(R"(pipeline_stage_duration_seconds_count{stage="pay"})") == 3);
  // Through the outbox: OrderConfirmed x2, OrderFailed x1. The running sagas' events,
  // without an outbox row: OrderPlaced x3, OrderValidated x3, InventoryReserved x3,
  // PaymentProcessed x2.
  CHECK(delta("outbox_events_published_total") == 3);
  CHECK(delta(R"(outbox_events_sent_without_row_total{outcome="acknowledged"})") == 11);
  CHECK(delta(R"(outbox_events_sent_without_row_total{outcome="lost"})") == 0);
  for (const char* stage : {"validate", "reserve", "pay", "confirm"})
    CHECK(test::metric_sample(after,
                              fmt::format(R"(pipeline_stage_enabled{{stage="{}"}})", stage)) == 1);
  CHECK(test::metric_sample(after, "process_resident_memory_bytes") > 0);
  CHECK(test::metric_sample(after, R"(db_pool_connections{state="idle"})") > 0);
  // Placing and processing three orders took many database transactions.
  CHECK(delta("db_transaction_duration_seconds_count") >= 3 * 5);
  CHECK(after.find("order_id") == std::string::npos);
  CHECK(after.find("ORD-") == std::string::npos);  // no per-order label values

  auto path = fmt::format("{}/metrics-{}.txt",
                          std::getenv("TEST_LOG_DIR") ? std::getenv("TEST_LOG_DIR") : "/tmp", port);
  std::ofstream(path) << after;
  CHECK(std::system(fmt::format("promtool check metrics < '{}'", path).c_str()) == 0);

  auto lag = test::http_get(port, "/actuator/metrics/kafka.consumer.lag");
  CHECK(lag.status == 200);
  CHECK(test::json_field(lag.body, "name") == "kafka.consumer.lag");
  CHECK(lag.body.find(R"("measurements":[{"statistic":"VALUE","value":)") != std::string::npos);
  CHECK(lag.body.find(R"("tag":"topic","values":[)") != std::string::npos);
  CHECK(lag.body.find("orders.placed") != std::string::npos);
  // Every metric the Grafana dashboard queries exists.
  std::ifstream dashboard_file(test::repo_root() + "/deploy/grafana/order-pipeline.json");
  std::stringstream dashboard;
  dashboard << dashboard_file.rdbuf();
  std::regex metric_name(R"(\b((orders|order|pipeline|kafka|outbox|http|db|process)_[a-z_]+))");
  std::set<std::string> queried;
  auto text = dashboard.str();
  for (std::sregex_iterator it(text.begin(), text.end(), metric_name), end; it != end; ++it) {
    auto name = (*it)[1].str();
    if (name.size() > 7 && name.compare(name.size() - 7, 7, "_bucket") == 0)
      name.resize(name.size() - 7);
    queried.insert(name);
  }
  CHECK(queried.size() >= 10);
  for (const auto& name : queried) {
    INFO(name);
    CHECK(after.find("# TYPE " + name + " ") != std::string::npos);
  }

  auto names = test::http_get(port, "/actuator/metrics");
  CHECK(names.body.find("kafka.consumer.lag") != std::string::npos);
  CHECK(test::http_get(port, "/actuator/metrics/no.such.metric").status == 404);
}

TEST_CASE("after a restart with everything consumed, consumer lag reads 0, not the topics' history",
          "[metrics][kafka]") {
  test::simulator_process gateway;
  std::map<std::string, std::string> env{{"PAYMENT_GATEWAY_URL", gateway.url()}};
  auto customer = test::unique_name("cust-lag");
  auto product = test::unique_name("prod-lag");
  {
    test::server_process first(env);
    first.start();
    first.wait_until_ready();
    auto port = first.port();
    test::put_customer(port, customer, "lag@example.com");
    test::put_product(port, product, "Lag", "1.00", 100);
    for (int i = 0; i < 5; ++i) {
      auto reply = test::http_call(
          port, "POST", "/api/orders",
          fmt::format(
              R"({{"customerId":"{}","totalAmount":1.00,"items":[{{"productId":"{}","quantity":1,"price":1.00}}]}})",
              customer, product));
      REQUIRE(reply.status == 200);
      CHECK(final_status(port, test::json_field(reply.body, "orderId")) == "CONFIRMED");
    }
    settle(port);
    CHECK(first.terminate() == 0);  // drains and commits its offsets
  }

  test::server_process second(env);
  second.start();
  second.wait_until_ready();
  auto port = second.port();
  // Wait until this replica holds and measured every stage topic's partitions; nothing new was
  // sent meanwhile, so each must read 0. Before the fix every partition counted from the
  // log's start until its next message.
  auto deadline = std::chrono::steady_clock::now() + 60s;
  auto all_measured = [&] {
    for (const auto& topic : stage_topics)
      if (lag_of(port, topic).partitions != partitions_per_topic)
        return false;
    return true;
  };
  while (!all_measured() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(200ms);
  REQUIRE(all_measured());
  for (const auto& topic : stage_topics) {
    INFO(topic);
    CHECK(lag_of(port, topic).lag == 0);
  }
  CHECK(test::http_get(port, "/actuator/metrics/kafka.consumer.lag")
            .body.find(R"("measurements":[{"statistic":"VALUE","value":0}])") != std::string::npos);
  auto text = scrape(port);
  std::istringstream lines(text);
  std::string line;
  int series = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("kafka_consumer_lag_records{", 0) != 0)
      continue;
    ++series;
    INFO(line);
    CHECK(line.substr(line.rfind(' ') + 1) == "0");
  }
  CHECK(series >= 4 * partitions_per_topic);
}
