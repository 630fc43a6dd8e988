// A program's event handlers on the pipeline's outcome events, against the real PostgreSQL
// and Kafka: each event handled once, redeliveries dropped by the handler's claims, a failing
// handler retried, then dead-lettered, handlers see only the outcomes they asked for, and a
// runtime that takes over a handler's group loses and repeats nothing.

#include <fmt/format.h>
#include <librdkafka/rdkafkacpp.h>

#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <random>

#include "handlers/event_handler_runtime.hpp"
#include "orders/adapters/order_json.hpp"
#include "platform/kafka/kafka_admin.hpp"
#include "platform/metrics/registry.hpp"
#include "platform/outbox/outbox.hpp"
#include "platform/pg/migrator.hpp"
#include "support/test_environment.hpp"

using namespace op;
using namespace std::chrono_literals;
using order_pipeline::outcome;

namespace {

std::string random_uuid() {
  static std::mutex mutex;
  static std::mt19937_64 rng(std::random_device{}());
  std::lock_guard lock(mutex);
  auto hex = fmt::format("{:016x}{:016x}", rng(), rng());
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20, 12);
}

struct published {
  std::string event_id;
  std::string order_id;
  std::string status;
};

// Unique topics, group, dead-letter topic and result table per test; one producer.
struct handler_world {
  std::string confirmed_topic = test::unique_name("handlers-confirmed");
  std::string failed_topic = test::unique_name("handlers-failed");
  std::string group = test::unique_name("handlers");
  std::string table;
  pg::connection_pool pool{test::db_url(), 4, 3s};
  std::string dlq_topic = test::unique_name("handlers-dlq");
  orders::dead_letter_queue dead_letters{dlq_topic};
  std::unique_ptr<RdKafka::Producer> producer;

  handler_world() {
    table = test::unique_name("handled");
    std::replace(table.begin(), table.end(), '-', '_');
    {
      pqxx::connection c(test::db_url());
      pg::migrate(c, pg::embedded_migrations());
      pqxx::work tx(c);
      // No unique constraint: a second run of a handler for one event must show as a row.
      tx.exec("CREATE TABLE " + table +
              " (seq bigserial PRIMARY KEY, handler text NOT NULL, event_id uuid NOT NULL,"
              " order_id text NOT NULL, status text NOT NULL)");
      tx.commit();
    }
    pool.add_setup(outbox::prepare_statements);
    pool.add_setup(orders::dead_letter_queue::prepare_statements);
    kafka::kafka_admin admin(test::kafka_brokers());
    // The dead-letter topic too: parking writes to the shared outbox, which the next server's
    // relay publishes in order; an event for a topic that does not exist would hold it up.
    admin.ensure_topics({{confirmed_topic, 3, 1}, {failed_topic, 3, 1}, {dlq_topic, 1, 1}}, 10s);
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    std::string err;
    REQUIRE(conf->set("bootstrap.servers", test::kafka_brokers(), err) == RdKafka::Conf::CONF_OK);
    REQUIRE(conf->set("enable.idempotence", "true", err) == RdKafka::Conf::CONF_OK);
    producer.reset(RdKafka::Producer::create(conf.get(), err));
    REQUIRE(producer);
  }

  ~handler_world() {
    pqxx::connection c(test::db_url());
    pqxx::work tx(c);
    tx.exec("DROP TABLE IF EXISTS " + table);
    tx.commit();
  }

  handlers::runtime_settings settings() const {
    handlers::runtime_settings s;
    s.bootstrap_servers = test::kafka_brokers();
    s.group_id = group;
    s.topics = {confirmed_topic, failed_topic};
    s.retry = {3, 20ms, 0.2};
    s.threads = 2;
    return s;
  }

  // A handler that records each event it is given as a row of `table`.
  order_pipeline::event_handler recorder(std::string name, std::set<outcome> outcomes) const {
    return {name, std::move(outcomes),
            [table = table, name](pqxx::work& tx, const order_pipeline::order_event& e) {
              tx.exec_params("INSERT INTO " + table +
                                 " (handler, event_id, order_id, status) VALUES ($1, $2, $3, $4)",
                             name, e.event_id, e.order_id, e.status);
            }};
  }

  // Sends the event of `order_id` ending with `status` (to the topic the pipeline uses for
  // it), as the outbox relay publishes it; `event_id` repeats an earlier event when given.
  published publish(const std::string& order_id, const std::string& status,
                    std::string event_id = "") {
    if (event_id.empty())
      event_id = random_uuid();
    orders::order_view o;
    o.order_id = order_id;
    o.customer_id = "CUST-001";
    o.payment_method = "CREDIT_CARD";
    o.status = status;
    if (status != "CONFIRMED") {
      o.cancel_reason = "PAYMENT_DECLINED";
      o.cancel_detail = "card declined";
    }
    o.total_amount = orders::money::from_cents(2999);
    o.items = {{"PROD-001", "Wireless Mouse", 1, orders::money::from_cents(2999)}};
    o.created_at = o.updated_at = "2026-12-01T09:15:02.118Z";
    bool confirmed = status == "CONFIRMED";
    auto value = R"({"eventId":")" + event_id + R"(","eventType":")" +
                 (confirmed ? "OrderConfirmed" : "OrderFailed") + R"(","orderId":")" + order_id +
                 R"(","occurredAt":"2026-12-01T09:15:02.118Z","payload":)" + orders::order_json(o) +
                 "}";
    send(confirmed ? confirmed_topic : failed_topic, order_id, value);
    return {event_id, order_id, status};
  }

  void send(const std::string& topic, const std::string& key, const std::string& value) {
    REQUIRE(producer->produce(topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
                              const_cast<char*>(value.data()), value.size(), key.data(), key.size(),
                              0, nullptr) == RdKafka::ERR_NO_ERROR);
  }
  void flush() { REQUIRE(producer->flush(10000) == RdKafka::ERR_NO_ERROR); }

  std::int64_t scalar(const std::string& sql) {
    pqxx::connection c(test::db_url());
    pqxx::work tx(c);
    return tx.exec1(sql)[0].as<std::int64_t>();
  }
  // Rows of `handler` for `event_id`.
  std::int64_t handled(const std::string& handler, const std::string& event_id) {
    return scalar("SELECT count(*) FROM " + table + " WHERE handler = '" + handler +
                  "' AND event_id = '" + event_id + "'");
  }
  std::int64_t rows_of(const std::string& handler) {
    return scalar("SELECT count(*) FROM " + table + " WHERE handler = '" + handler + "'");
  }
};

double handler_events(const std::string& handler, const char* outcome) {
  return metrics::global()
      .get_counter("pipeline_handler_events_total", "",
                   {{"handler", handler}, {"outcome", outcome}})
      .value();
}

}  // namespace

TEST_CASE(
    "each outcome event is handled once and in order per order and a redelivered one changes "
    "nothing",
    "[handlers][db][kafka]") {
  handler_world world;
  handlers::event_handler_runtime runtime(
      world.settings(), world.pool, world.dead_letters,
      {world.recorder("audit", {outcome::confirmed, outcome::cancelled, outcome::failed})});
  runtime.start();

  std::vector<published> events;
  const char* statuses[] = {"CONFIRMED", "CANCELLED", "FAILED"};
  for (int i = 0; i < 30; ++i)
    events.push_back(world.publish(test::unique_name("ORD-once"), statuses[i % 3]));
  // Several events of one order (the pipeline sends one; the order must hold for any number).
  const auto busy_order = test::unique_name("ORD-busy");
  std::vector<std::string> busy_ids;
  for (int i = 0; i < 5; ++i)
    busy_ids.push_back(world.publish(busy_order, "CONFIRMED").event_id);
  world.flush();
  REQUIRE(test::eventually([&] { return world.rows_of("audit") >= 35; }));
  for (const auto& e : events) {
    INFO(e.order_id);
    CHECK(world.handled("audit", e.event_id) == 1);
  }
  CHECK(world.scalar("SELECT count(*) FROM " + world.table +
                     " WHERE handler = 'audit' AND status NOT IN ('CONFIRMED', 'CANCELLED',"
                     " 'FAILED')") == 0);
  std::vector<std::string> busy_handled;
  {
    pqxx::connection c(test::db_url());
    pqxx::work tx(c);
    for (const auto& r : tx.exec_params(
             "SELECT event_id::text FROM " + world.table + " WHERE order_id = $1 ORDER BY seq",
             busy_order))
      busy_handled.push_back(r[0].as<std::string>());
  }
  CHECK(busy_handled == busy_ids);

  // The same events again (same event ids), then a new one of the same order, which comes
  // after them in the partition: once it is handled, the duplicates were seen and dropped.
  auto duplicates_before = handler_events("audit", "duplicate");
  world.publish(events[0].order_id, events[0].status, events[0].event_id);
  world.publish(busy_order, "CONFIRMED", busy_ids[2]);
  auto later = world.publish(busy_order, "CONFIRMED");
  world.flush();
  REQUIRE(test::eventually([&] { return world.handled("audit", later.event_id) == 1; }));
  CHECK(world.handled("audit", events[0].event_id) == 1);
  CHECK(world.handled("audit", busy_ids[2]) == 1);
  CHECK(world.rows_of("audit") == 36);
  CHECK(test::eventually(
      [&] { return handler_events("audit", "duplicate") - duplicates_before == 2; }, 10s));
  CHECK(world.scalar("SELECT count(*) FROM processed_events WHERE consumer = 'handler:audit'"
                     " AND event_id = '" +
                     later.event_id + "'") == 1);
  runtime.stop(5s);
}

TEST_CASE("a handler that throws is run again and records its event once",
          "[handlers][db][kafka]") {
  handler_world world;
  std::mutex mutex;
  std::map<std::string, int> calls;  // by event id
  auto recorder = world.recorder("flaky", {outcome::confirmed});
  order_pipeline::event_handler flaky{
      "flaky", {outcome::confirmed}, [&](pqxx::work& tx, const order_pipeline::order_event& e) {
        recorder.handle(tx, e);  // rolled back when this run throws
        std::lock_guard lock(mutex);
        if (++calls[e.event_id] <= 2)
          throw std::runtime_error("the notification service is not answering");
      }};
  handlers::event_handler_runtime runtime(world.settings(), world.pool, world.dead_letters,
                                          {flaky});
  runtime.start();
  auto event = world.publish(test::unique_name("ORD-flaky"), "CONFIRMED");
  world.flush();
  REQUIRE(test::eventually([&] { return world.handled("flaky", event.event_id) == 1; }));
  runtime.stop(5s);
  std::lock_guard lock(mutex);
  CHECK(calls[event.event_id] == 3);
  CHECK(world.handled("flaky", event.event_id) == 1);
  CHECK(
      world.scalar("SELECT count(*) FROM dead_letters WHERE stage = 'handler:flaky' AND topic = '" +
                   world.confirmed_topic + "'") == 0);
}

TEST_CASE("a handler that keeps throwing has its message dead-lettered and goes on",
          "[handlers][db][kafka]") {
  handler_world world;
  const auto poisoned_order = test::unique_name("ORD-poisoned");
  std::atomic<int> poisoned_calls{0};
  auto recorder = world.recorder("broken", {outcome::cancelled, outcome::failed});
  order_pipeline::event_handler broken{
      "broken",
      {outcome::cancelled, outcome::failed},
      [&](pqxx::work& tx, const order_pipeline::order_event& e) {
        recorder.handle(tx, e);
        if (e.order_id == poisoned_order) {
          ++poisoned_calls;
          throw std::runtime_error("analytics feed refused the event");
        }
      }};
  handlers::event_handler_runtime runtime(world.settings(), world.pool, world.dead_letters,
                                          {broken});
  runtime.start();
  auto poisoned = world.publish(poisoned_order, "CANCELLED");
  // Not an event at all, in the same partition as the order after it.
  const auto healthy_order = test::unique_name("ORD-healthy");
  world.send(world.failed_topic, healthy_order, "{\"not\":\"an event\"}");
  auto healthy = world.publish(healthy_order, "FAILED");
  world.flush();

  auto dead_letter_count = [&](const std::string& error_class) {
    return world.scalar(
        "SELECT count(*) FROM dead_letters WHERE stage = 'handler:broken' AND topic = '" +
        world.failed_topic + "' AND error_class = '" + error_class + "'");
  };
  REQUIRE(test::eventually([&] { return dead_letter_count("retries_exhausted") == 1; }));
  REQUIRE(test::eventually([&] { return world.handled("broken", healthy.event_id) == 1; }));
  CHECK(dead_letter_count("undecodable") == 1);
  CHECK(world.scalar("SELECT count(*) FROM dead_letters WHERE stage = 'handler:broken' AND"
                     " order_id = '" +
                     poisoned_order + "' AND attempts = 4 AND status = 'PARKED'") == 1);
  CHECK(poisoned_calls == 4);  // the first run and the policy's 3 retries
  CHECK(world.handled("broken", poisoned.event_id) == 0);  // every run rolled back
  CHECK(handler_events("broken", "dead_lettered") == 2);
  // Unclaimed: a replay of the dead letter runs the handler again.
  CHECK(world.scalar("SELECT count(*) FROM processed_events WHERE consumer = 'handler:broken'"
                     " AND event_id = '" +
                     poisoned.event_id + "'") == 0);
  runtime.stop(5s);
}

TEST_CASE("a handler for cancelled orders sees no confirmed or failed ones",
          "[handlers][db][kafka]") {
  handler_world world;
  handlers::event_handler_runtime runtime(
      world.settings(), world.pool, world.dead_letters,
      {world.recorder("cancellations", {outcome::cancelled}),
       world.recorder("everything", {outcome::confirmed, outcome::cancelled, outcome::failed})});
  runtime.start();
  std::vector<published> events, markers;
  for (int i = 0; i < 4; ++i)
    for (const char* status : {"CONFIRMED", "CANCELLED", "FAILED"})
      events.push_back(world.publish(test::unique_name("ORD-kind"), status));
  // After each FAILED event, a CANCELLED one of the same order (same partition, later): once
  // the cancelled-only handler has all of these, it has been offered every FAILED event.
  for (const auto& e : events)
    if (e.status == "FAILED")
      markers.push_back(world.publish(e.order_id, "CANCELLED"));
  world.flush();
  // Every event was delivered: the handler for all outcomes recorded each.
  REQUIRE(test::eventually([&] { return world.rows_of("everything") == 16; }));
  REQUIRE(test::eventually([&] {
    return std::all_of(markers.begin(), markers.end(), [&](const published& m) {
      return world.handled("cancellations", m.event_id) == 1;
    });
  }));
  for (const auto& e : events) {
    INFO(e.status);
    CHECK(world.handled("cancellations", e.event_id) == (e.status == "CANCELLED" ? 1 : 0));
  }
  CHECK(world.rows_of("cancellations") == 8);
  runtime.stop(5s);
}

TEST_CASE("a new runtime of the same group takes over mid-stream: nothing lost or repeated",
          "[handlers][db][kafka]") {
  handler_world world;
  auto recorder = world.recorder("takeover", {outcome::confirmed, outcome::failed});
  // Slow enough that events are in flight when the first runtime stops.
  order_pipeline::event_handler slow{"takeover", recorder.outcomes,
                                     [&](pqxx::work& tx, const order_pipeline::order_event& e) {
                                       tx.exec("SELECT pg_sleep(0.005)");
                                       recorder.handle(tx, e);
                                     }};
  std::vector<std::string> orders_ids;
  for (int i = 0; i < 20; ++i)
    orders_ids.push_back(test::unique_name("ORD-takeover"));
  std::vector<published> events;
  auto publish_round = [&](int round) {
    for (const auto& order_id : orders_ids)
      events.push_back(world.publish(order_id, round % 2 ? "FAILED" : "CONFIRMED"));
  };
  for (int round = 0; round < 10; ++round)
    publish_round(round);
  world.flush();

  auto first = std::make_unique<handlers::event_handler_runtime>(
      world.settings(), world.pool, world.dead_letters, std::vector{slow});
  first->start();
  REQUIRE(test::eventually([&] { return world.rows_of("takeover") >= 40; }));
  // No drain: what is in flight is left uncommitted, and delivered again to the next one.
  first->stop(0ms);
  first.reset();
  const auto at_stop = world.rows_of("takeover");
  CHECK(at_stop < 200);

  handlers::event_handler_runtime second(world.settings(), world.pool, world.dead_letters, {slow});
  second.start();
  for (int round = 10; round < 15; ++round)
    publish_round(round);
  world.flush();
  REQUIRE(test::eventually([&] { return world.rows_of("takeover") >= 300; }, 120s));
  second.stop(5s);
  CHECK(world.rows_of("takeover") == 300);
  CHECK(world.scalar("SELECT count(DISTINCT event_id) FROM " + world.table) == 300);
  std::int64_t missing = 0;
  for (const auto& e : events)
    missing += world.handled("takeover", e.event_id) == 1 ? 0 : 1;
  CHECK(missing == 0);
}
