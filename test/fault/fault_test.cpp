// Fault injection: orders placed through nginx onto two server replicas while a replica is
// SIGKILLed, Kafka and PostgreSQL restart and the payment gateway fails, slows down or is
// away. Afterwards every accepted order must be final, with stock and money reconciled.
//
// The test starts its own services, instance 'fault' of scripts/infra/* (PostgreSQL 25732,
// Kafka 25092/25093, nginx 25080), the replicas on 25081-25082 and the gateway simulator on
// 25090, all on loopback, and stops them at the end, also on failure. The ports lie below
// Linux's ephemeral range (32768-60999): services restarted mid-run must not find their port
// taken by an outgoing connection. Load and faults are
// bounded in time and count. For a local run: FAULT_SEED (repeat a run), FAULT_LOAD_SECONDS,
// FAULT_RATE (orders per second).

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <pqxx/pqxx>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fault/fault_harness.hpp"
#include "support/catalog_fixture.hpp"
#include "support/http_client.hpp"
#include "support/server_process.hpp"
#include "support/simulator_process.hpp"
#include "support/test_environment.hpp"

using namespace op;
using namespace op::fault;
using namespace std::chrono_literals;

namespace {
constexpr std::array<unsigned short, 2> replica_ports{25081, 25082};
}  // namespace

TEST_CASE("orders survive replica kills, Kafka and PostgreSQL restarts and gateway failures",
          "[fault]") {
  std::signal(SIGPIPE, SIG_IGN);
  const auto seed = static_cast<std::uint64_t>(
      env_number("FAULT_SEED", static_cast<long>(std::random_device{}() & 0x7fffffff)));
  const auto load_seconds = std::clamp(env_number("FAULT_LOAD_SECONDS", 75), 20L, 300L);
  const auto rate = std::clamp(env_number("FAULT_RATE", 40), 1L, 200L);
  if (!std::getenv("TEST_LOG_DIR"))
    ::setenv("TEST_LOG_DIR", FAULT_LOG_DIR, 1);  // before any thread reads the environment
  test::run_script(fmt::format("mkdir -p '{}'", std::getenv("TEST_LOG_DIR")));
  std::cout << fmt::format(
                   "fault suite: seed {} (FAULT_SEED={} repeats this run), {} s of load "
                   "at {} orders/s, logs in {}",
                   seed, seed, load_seconds, rate, std::getenv("TEST_LOG_DIR"))
            << std::endl;
  std::mt19937_64 rng(seed);
  const auto suite_started = steady::now();

  // --- services -------------------------------------------------------------------------
  services_guard guard;
  REQUIRE(test::run_script(infra + "scripts/infra/postgres start fault --fresh") == 0);
  REQUIRE(test::run_script(infra + "scripts/infra/kafka start fault --fresh") == 0);
  test::simulator_process gateway(gateway_port);

  const auto replica_env = replica_settings(gateway.url());
  std::vector<std::unique_ptr<test::server_process>> replicas;
  for (auto port : replica_ports) {
    auto env = replica_env;
    env["HTTP_PORT"] = std::to_string(port);
    replicas.push_back(std::make_unique<test::server_process>(env));
  }
  // One after the other: the first applies the migrations and creates the topics.
  for (auto& r : replicas) {
    r->start();
    r->wait_until_ready(90s);
  }
  REQUIRE(test::run_script(fmt::format("{} scripts/infra/nginx start fault {} {}", infra,
                                       replica_ports[0], replica_ports[1])) == 0);

  // --- catalog --------------------------------------------------------------------------
  const std::string run = fmt::format("f{:x}", seed & 0xffffff);
  std::vector<std::string> customers;
  for (int i = 1; i <= 5; ++i) {
    customers.push_back(fmt::format("{}-cust-{}", run, i));
    test::put_customer(lb_port, customers.back(), "buyer@example.com");
  }
  std::vector<product> plenty = {{run + "-plenty-1", 1250, 5000},
                                 {run + "-plenty-2", 799, 5000},
                                 {run + "-plenty-3", 2300, 5000},
                                 {run + "-plenty-4", 325, 5000}};
  // Scarce: far fewer units than orders for them, so OUT_OF_STOCK happens under load.
  std::vector<product> scarce = {
      {run + "-scarce-1", 4900, 30}, {run + "-scarce-2", 1575, 50}, {run + "-scarce-3", 9999, 70}};
  std::map<std::string, std::int64_t> initial_stock;
  for (const auto* list : {&plenty, &scarce})
    for (const auto& p : *list) {
      test::put_product(lb_port, p.id, "Fault test product", money_text(p.price_cents), p.stock);
      initial_stock[p.id] = p.stock;
    }

  const auto order_count = static_cast<std::size_t>(load_seconds * rate);
  std::vector<order_record> orders;
  orders.reserve(order_count);
  for (std::size_t i = 0; i < order_count; ++i)
    orders.push_back(make_order(rng, i, run, plenty, scarce, customers));

  // --- load and faults --------------------------------------------------------------------
  const auto t0 = steady::now();
  const auto load_end = t0 + std::chrono::seconds(load_seconds);
  timeline events(t0);
  events.note(fmt::format("load starts: {} orders over {} s through nginx :{}", order_count,
                          load_seconds, lb_port));
  std::map<std::string, int> faults;  // kind -> count; written by one thread each, read after
  std::map<std::string, int> gateway_faults;
  std::vector<std::string> fault_errors;  // main thread only

  {
    std::atomic<std::size_t> next{0};
    const auto period = std::chrono::duration<double>(1.0 / static_cast<double>(rate));
    std::vector<std::jthread> clients;
    for (int w = 0; w < 24; ++w)
      clients.emplace_back([&, w](std::stop_token stop) {
        std::mt19937 jitter(static_cast<std::uint32_t>(seed) + static_cast<std::uint32_t>(w));
        while (!stop.stop_requested()) {
          auto i = next.fetch_add(1);
          if (i >= orders.size())
            return;
          auto due = t0 + std::chrono::duration_cast<steady::duration>(period * i);
          std::this_thread::sleep_until(due);
          place(orders[i], due + 30s, jitter);
        }
      });

    // Gateway faults on a thread of their own, so they overlap the infrastructure ones.
    std::jthread gateway_thread([&, gseed = rng()] {
      std::mt19937_64 grng(gseed);
      auto uniform = [&grng](int lo, int hi) {
        return lo + static_cast<int>(grng() % (hi - lo + 1));
      };
      std::vector<std::pair<std::string, std::string>> kinds = {
          {"gateway outage", R"({"outage":true})"},
          {"gateway 5xx", R"({"failureRate":0.7})"},
          // Both beyond the replicas' 1 s payment timeout: a charge taken but answered late,
          // and one handled only after the pay stage gave up on all its attempts (~3 s).
          {"gateway slow-held", R"({"timeoutMs":2500})"},
          {"gateway slow-latency", R"({"latencyMs":4000})"},
      };
      std::shuffle(kinds.begin(), kinds.end(), grng);
      for (const auto& [name, json] : kinds) {
        std::this_thread::sleep_for(std::chrono::milliseconds(uniform(2000, 7000)));
        auto seconds = uniform(3, 6);
        bool on = gateway_control(json);
        events.note(
            fmt::format("{} for {} s: {}{}", name, seconds, json, on ? "" : " (control FAILED)"));
        std::this_thread::sleep_for(std::chrono::seconds(seconds));
        bool off = gateway_control(gateway_healthy);
        events.note(fmt::format("{} over{}", name, off ? "" : " (control FAILED)"));
        if (on)
          ++gateway_faults[name];
      }
    });

    // Infrastructure faults on this thread: the replicas it restarts die with the thread
    // that forked them (PR_SET_PDEATHSIG), and this one lives to the end of the test.
    auto uniform = [&rng](int lo, int hi) { return lo + static_cast<int>(rng() % (hi - lo + 1)); };
    auto restart_replica = [&](std::size_t index) {
      auto deadline = steady::now() + 90s;
      for (int attempt = 1; steady::now() < deadline; ++attempt) {
        if (replicas[index]->spawn(true) && replicas[index]->ready_within(45s)) {
          events.note(
              fmt::format("replica :{} ready again (attempt {})", replica_ports[index], attempt));
          return;
        }
        replicas[index]->kill();
        events.note(fmt::format("replica :{} did not become ready; starting it again",
                                replica_ports[index]));
        std::this_thread::sleep_for(1s);
      }
      fault_errors.push_back(
          fmt::format("replica :{} could not be restarted within 90 s", replica_ports[index]));
    };
    auto script = [&](const std::string& what, const std::string& command) {
      events.note(what + "...");
      int status = test::run_script(infra + command);
      events.note(fmt::format("{}: exit status {}", what, status));
      if (status != 0)
        fault_errors.push_back(fmt::format("'{}' exited with {}", command, status));
    };
    std::vector<std::string> plan = {"replica kill", "kafka restart", "postgres restart"};
    std::shuffle(plan.begin(), plan.end(), rng);
    plan.insert(plan.begin() + static_cast<long>(rng() % (plan.size() + 1)), "replica kill");
    std::this_thread::sleep_for(std::chrono::milliseconds(uniform(3000, 6000)));
    for (const auto& kind : plan) {
      if (kind == "replica kill") {
        auto index = static_cast<std::size_t>(rng() % replicas.size());
        replicas[index]->kill();
        events.note(fmt::format("SIGKILL replica :{}", replica_ports[index]));
        std::this_thread::sleep_for(std::chrono::milliseconds(uniform(2000, 5000)));
        restart_replica(index);
      } else if (kind == "kafka restart") {
        script("stopping Kafka", "scripts/infra/kafka stop fault");
        std::this_thread::sleep_for(std::chrono::milliseconds(uniform(3000, 6000)));
        script("starting Kafka", "scripts/infra/kafka start fault");
      } else {
        script("stopping PostgreSQL", "scripts/infra/postgres stop fault");
        std::this_thread::sleep_for(std::chrono::milliseconds(uniform(3000, 6000)));
        script("starting PostgreSQL", "scripts/infra/postgres start fault");
      }
      ++faults[kind];
      std::this_thread::sleep_for(std::chrono::milliseconds(uniform(3000, 7000)));
    }
    std::this_thread::sleep_until(load_end);
    for (auto& c : clients)
      c.join();
    gateway_thread.join();
  }
  for (const auto& [name, count] : gateway_faults)
    faults[name] += count;
  for (std::size_t i = 0; i < replicas.size(); ++i)
    if (!replicas[i]->running()) {
      events.note(fmt::format("replica :{} is not running after the load; restarting it",
                              replica_ports[i]));
      CHECK(replicas[i]->spawn(true));
      CHECK(replicas[i]->ready_within(60s));
    }
  CHECK(gateway_control(gateway_healthy));
  const double load_took = events.seconds();
  events.note("load and faults over");
  for (const auto& e : fault_errors)
    FAIL_CHECK(e);  // a fault that could not be injected or undone

  auto [sent, accepted, unknown, resolved, rejected, retried, by_final, db] =
      check_outcomes(orders, initial_stock, events);
  CHECK(accepted > sent / 2);  // the pipeline kept taking orders through the faults

  // --- summary ---------------------------------------------------------------------------
  std::string finals, kinds;
  for (const auto& [status, n] : by_final)
    finals += fmt::format(" {}={}", status, n);
  for (const auto& [kind, n] : faults)
    kinds += fmt::format(" {}={}", kind, n);
  std::string logs;
  for (std::size_t i = 0; i < replicas.size(); ++i)
    logs += fmt::format(" {} ({} ERROR lines)", replicas[i]->log_path(),
                        count_lines_with(replicas[i]->log_path(), R"("level":"ERROR")"));
  std::cout
      << fmt::format(
             "fault summary: seed {} | orders sent {}, accepted {}, unknown {} ({} created),"
             " rejected {}, retried {} | final:{} | faults:{} | load {:.0f} s, whole run {:.0f} s\n"
             "replica logs:{}",
             seed, sent, accepted, unknown, resolved, rejected, retried, finals, kinds, load_took,
             std::chrono::duration<double>(steady::now() - suite_started).count(), logs)
      << std::endl;
  CHECK(faults["replica kill"] >= 1);
  CHECK(faults["kafka restart"] >= 1);
  CHECK(faults["postgres restart"] >= 1);
  CHECK(faults["gateway outage"] >= 1);
  CHECK(faults["gateway 5xx"] >= 1);
  CHECK(faults["gateway slow-held"] >= 1);
  CHECK(faults["gateway slow-latency"] >= 1);

  for (auto& r : replicas)
    r->terminate(10s);
}

// The gateway, slow beyond the pay stage's whole retry budget, handles a charge after the
// pay stage gave up and the order was cancelled; it recovers right then, so the compensating
// refund is handled before that charge. The money must still be given back.
TEST_CASE("a charge the gateway takes after the pay stage gave up is refunded all the same",
          "[fault][payments]") {
  std::signal(SIGPIPE, SIG_IGN);
  if (!std::getenv("TEST_LOG_DIR"))
    ::setenv("TEST_LOG_DIR", FAULT_LOG_DIR, 1);
  test::run_script(fmt::format("mkdir -p '{}'", std::getenv("TEST_LOG_DIR")));
  services_guard guard;
  REQUIRE(test::run_script(infra + "scripts/infra/postgres start fault --fresh") == 0);
  REQUIRE(test::run_script(infra + "scripts/infra/kafka start fault --fresh") == 0);
  test::simulator_process gateway(gateway_port);
  auto env = replica_settings(gateway.url());
  env["HTTP_PORT"] = std::to_string(replica_ports[0]);
  test::server_process server(env);
  server.start();
  server.wait_until_ready(90s);
  const auto port = server.port();
  test::put_customer(port, "late-cust", "buyer@example.com");
  test::put_product(port, "late-prod", "Late charge", "12.99", 10);
  const std::string body =
      R"({"customerId":"late-cust","totalAmount":12.99,"items":[{"productId":"late-prod","quantity":1,"price":12.99}]})";
  auto place_and_wait = [&](const std::string& key) {
    auto reply = test::http_call(port, "POST", "/api/orders", body, {{"Idempotency-Key", key}});
    REQUIRE(reply.status == 200);
    auto id = test::json_field(reply.body, "orderId");
    auto deadline = steady::now() + 60s;
    std::string status;
    while (steady::now() < deadline) {
      status = test::json_field(test::http_get(port, "/api/orders/" + id).body, "status");
      if (is_final(status))
        break;
      std::this_thread::sleep_for(50ms);
    }
    return std::pair{id, status};
  };
  // The consumers have their partitions once a first order went through.
  REQUIRE(place_and_wait("late-warm-up").second == "CONFIRMED");

  gateway.control(R"({"latencyMs":6000})");
  auto [id, status] = place_and_wait("late-order");
  gateway.control(gateway_healthy);
  INFO("order " << id << " ended " << status << " while the gateway took 6 s per call");
  REQUIRE(status == "CANCELLED");

  // The held charges land about 6 s after they were sent; the refund worker had time after.
  gateway_ledger ledger;
  auto deadline = steady::now() + 20s;
  do {
    std::this_thread::sleep_for(500ms);
    ledger = ledger_of(id);
  } while (steady::now() < deadline &&
           (ledger.captured == 0 || ledger.captured != ledger.refunded));
  auto refund_state = with_db([&](pqxx::work& tx) {
    auto rows = tx.exec_params(
        "SELECT coalesce(refund_state, '') || ' ' || refunded_cents FROM payments"
        " WHERE order_id = $1",
        id);
    return rows.empty() ? std::string("(no payments row)") : rows[0][0].as<std::string>();
  });
  INFO("gateway: charges " << ledger.charges << " attempts " << ledger.attempts << " captured "
                           << ledger.captured << " refunded " << ledger.refunded
                           << "; payments refund_state/refunded_cents: " << refund_state);
  CHECK(ledger.charges <= 1);
  CHECK(ledger.captured == ledger.refunded);
  server.terminate(10s);
}
