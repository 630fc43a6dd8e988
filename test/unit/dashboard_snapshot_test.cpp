// The operator dashboard's snapshot document, a pure function of the metrics readings and
// the newest orders; and the SSE framing the stream sends it in.

#include "dashboard/dashboard_snapshot.hpp"

#include <rapidjson/document.h>

#include <catch2/catch.hpp>

#include "dashboard/metrics_reader.hpp"
#include "platform/http/event_stream.hpp"
#include "platform/metrics/registry.hpp"

using namespace op;
using namespace op::dashboard;

namespace {

// Buckets 0.1, 0.5, 1, +Inf.
histogram_reading histogram(std::vector<std::uint64_t> per_bucket) {
  histogram_reading h{{0.1, 0.5, 1.0}, {}};
  std::uint64_t running = 0;
  for (auto n : per_bucket)
    h.cumulative.push_back(running += n);
  return h;
}

rapidjson::Document parse(const std::string& json) {
  rapidjson::Document d;
  d.Parse(json.c_str(), json.size());
  REQUIRE_FALSE(d.HasParseError());
  return d;
}

metrics_reading reading(std::int64_t at_ms, double confirmed, double cancelled, double failed) {
  metrics_reading m;
  m.at_unix_ms = at_ms;
  m.confirmed = confirmed;
  m.cancelled = cancelled;
  m.failed = failed;
  return m;
}

}  // namespace

TEST_CASE("a latency percentile is estimated from the buckets observed between two readings",
          "[dashboard]") {
  auto earlier = histogram({10, 0, 0, 0});
  // Since then: 10 more in (0, 0.1], 10 in (0.1, 0.5], nothing slower.
  auto later = histogram({20, 10, 0, 0});
  CHECK(quantile(earlier, later, 0.5) == Approx(0.1));
  CHECK(quantile(earlier, later, 0.75) == Approx(0.3));  // half-way into (0.1, 0.5]
  CHECK(quantile(earlier, later, 0.25) == Approx(0.05));
  CHECK_FALSE(quantile(later, later, 0.5));  // nothing observed in between
  // Beyond the last finite bound, the bound is all a histogram can tell.
  CHECK(quantile(histogram_reading{}, histogram({0, 0, 0, 5}), 0.99) == Approx(1.0));
}

TEST_CASE("histograms of the three final statuses add up bucket by bucket", "[dashboard]") {
  histogram_reading all;
  merge(all, histogram({1, 2, 0, 0}));
  merge(all, histogram({0, 1, 1, 0}));
  CHECK(all.cumulative == std::vector<std::uint64_t>{1, 4, 5, 5});
}

TEST_CASE(
    "the snapshot has outcome rates per interval, percentiles over the window, and says "
    "which figures are this replica's",
    "[dashboard]") {
  std::vector<metrics_reading> history = {reading(1'000, 0, 0, 0), reading(2'000, 5, 1, 0),
                                          reading(3'000, 15, 1, 2)};
  history[0].end_to_end = histogram({0, 0, 0, 0});
  history[1].end_to_end = histogram({0, 6, 0, 0});
  history[2].end_to_end = histogram({0, 6, 12, 0});
  history[2].stages[2].messages = 20;  // pay handled 20 messages in the last 2 s
  history[2].stages[2].consumer_lag = 7;
  history[2].breaker_state = "OPEN";
  history[2].outbox_backlog = 3;
  history[2].dead_letters_parked = 2;
  std::vector<order_row> orders = {
      {"ORD-2", "CANCELLED", "OUT_OF_STOCK", 999, "2026-11-30T12:00:01.000Z",
       "2026-11-30T12:00:02.000Z"},
      {"ORD-1", "CONFIRMED", "", 19999, "2026-11-30T12:00:00.000Z", "2026-11-30T12:00:00.500Z"}};
  snapshot_inputs in;
  in.replica = "host-a:8081";
  in.interval_ms = 1000;
  in.history = history;
  in.window_seconds = 10;
  in.newest_orders = &orders;

  auto doc = parse(snapshot_json(in));
  CHECK(std::string(doc["replica"].GetString()) == "host-a:8081");
  CHECK(doc["generatedAt"].GetInt64() == 3'000);
  const auto& mine = doc["thisReplica"];
  const auto& outcomes = mine["outcomes"];
  REQUIRE(outcomes.Size() == 2);  // one point per interval after the first reading
  CHECK(outcomes[0]["at"].GetInt64() == 2'000);
  CHECK(outcomes[0]["confirmed"].GetDouble() == Approx(5));
  CHECK(outcomes[0]["cancelled"].GetDouble() == Approx(1));
  CHECK(outcomes[1]["confirmed"].GetDouble() == Approx(10));
  CHECK(outcomes[1]["failed"].GetDouble() == Approx(2));
  CHECK(outcomes[0]["p50"].GetDouble() == Approx(0.3));  // 6 observations in (0.1, 0.5]
  // Over the window (both intervals): 6 in (0.1, 0.5], 12 in (0.5, 1]: the median is in the latter.
  CHECK(outcomes[1]["p50"].GetDouble() == Approx(0.625));
  CHECK(outcomes[1]["p99"].GetDouble() == Approx(0.9925).margin(0.001));  // sent to 3 decimals
  const auto& pay = mine["stages"][2];
  CHECK(std::string(pay["stage"].GetString()) == "pay");
  CHECK(pay["perSecond"].GetDouble() == Approx(10));
  CHECK(pay["consumerLag"].GetDouble() == Approx(7));
  CHECK(pay["p50Seconds"].IsNull());  // no durations observed
  CHECK(std::string(mine["circuitBreaker"].GetString()) == "OPEN");

  const auto& cluster = doc["cluster"];
  CHECK(cluster["outboxBacklog"].GetDouble() == 3);
  CHECK(cluster["deadLetters"]["parked"].GetDouble() == 2);
  REQUIRE(cluster["newestOrders"].Size() == 2);
  const auto& first = cluster["newestOrders"][0];
  CHECK(std::string(first["orderId"].GetString()) == "ORD-2");
  CHECK(std::string(first["reason"].GetString()) == "OUT_OF_STOCK");
  CHECK(first["totalAmount"].GetDouble() == Approx(9.99));
  CHECK_FALSE(cluster["newestOrders"][1].HasMember("reason"));
  CHECK(cluster["newestOrders"][1]["totalAmount"].GetDouble() == Approx(199.99));
}

TEST_CASE("without the database the snapshot says why and still shows the metrics", "[dashboard]") {
  std::vector<metrics_reading> history = {reading(1'000, 0, 0, 0)};
  snapshot_inputs in;
  in.replica = "host-a:8081";
  in.history = history;
  in.database_error = "connection refused";
  auto doc = parse(snapshot_json(in));
  CHECK(doc["cluster"]["newestOrders"].IsNull());
  CHECK(std::string(doc["cluster"]["databaseError"].GetString()) == "connection refused");
  CHECK(doc["thisReplica"]["outcomes"].Size() == 0);
  CHECK(doc["thisReplica"]["stages"].Size() == 4);
}

TEST_CASE("a counter that went back (a restart) reads as no traffic, not a negative rate",
          "[dashboard]") {
  std::vector<metrics_reading> history = {reading(1'000, 50, 0, 0), reading(2'000, 3, 0, 0)};
  snapshot_inputs in;
  in.history = history;
  auto doc = parse(snapshot_json(in));
  CHECK(doc["thisReplica"]["outcomes"][0]["confirmed"].GetDouble() == 0);
}

TEST_CASE("the dashboard reads the registry's series in-process", "[dashboard]") {
  metrics::registry r;
  r.get_counter("orders_confirmed_total", "h").inc(4);
  r.get_counter("orders_cancelled_total", "h", {{"reason", "OUT_OF_STOCK"}}).inc(2);
  r.get_counter("orders_cancelled_total", "h", {{"reason", "PAYMENT_DECLINED"}}).inc(1);
  r.get_counter("pipeline_messages_total", "h", {{"stage", "pay"}, {"outcome", "applied"}}).inc(5);
  r.get_counter("pipeline_messages_total", "h", {{"stage", "pay"}, {"outcome", "duplicate"}}).inc();
  r.get_histogram("order_end_to_end_seconds", "h", {{"status", "CONFIRMED"}}).observe(0.2);
  r.get_histogram("order_end_to_end_seconds", "h", {{"status", "CANCELLED"}}).observe(0.3);
  r.add_callback("circuit_breaker_state", "h",
                 {{"name", "payment_gateway"}, {"state", "half_open"}}, [] { return 1.0; });
  r.get_gauge("dlq_entries", "h", {{"status", "PARKED"}}).set(3);

  auto m = read_metrics(r, {1, 2, 3, 4}, 42);
  CHECK(m.at_unix_ms == 42);
  CHECK(m.confirmed == 4);
  CHECK(m.cancelled == 3);
  CHECK(m.stages[2].messages == 6);
  CHECK(m.stages[0].messages == 0);
  CHECK(m.stages[3].consumer_lag == 4);
  CHECK(m.end_to_end.cumulative.back() == 2);
  CHECK(m.breaker_state == "HALF_OPEN");
  CHECK(m.dead_letters_parked == 3);
}

TEST_CASE("a server-sent event carries each line of its data on a data: line",
          "[dashboard][http]") {
  CHECK(http::sse_event("snapshot", R"({"a":1})") == "event: snapshot\ndata: {\"a\":1}\n\n");
  CHECK(http::sse_event("note", "one\ntwo") == "event: note\ndata: one\ndata: two\n\n");
}
