// A rolling restart the way Kubernetes runs one: three replicas behind nginx take orders from
// checkout clients that retry with their Idempotency-Key, while each replica in turn leaves
// the load balancer (its pod is no longer ready), gets SIGTERM, drains and exits, and a new
// one starts on its port and rejoins once ready. No order may fail after the client's
// retries, every accepted order ends final, nothing is charged twice, stock reconciles, and
// a freshly started replica causes no deadline cancellation. It prints the requests, retries
// and the end-to-end latency of the orders placed during the roll.
//
// The 'fault' instance's services (see fault_harness.hpp), replicas on 25081-25083. For a
// local run: ROLL_SEED, ROLL_RATE (orders per second, default 300).

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "fault/fault_harness.hpp"
#include "support/catalog_fixture.hpp"
#include "support/server_process.hpp"
#include "support/simulator_process.hpp"
#include "support/test_environment.hpp"

using namespace op;
using namespace op::fault;
using namespace std::chrono_literals;

namespace {

constexpr std::array<unsigned short, 3> replica_ports{25081, 25082, 25083};
using wall = std::chrono::system_clock;

int nginx_upstreams(const std::vector<unsigned short>& ports) {
  std::string list;
  for (auto p : ports)
    list += " " + std::to_string(p);
  return test::run_script(infra + "scripts/infra/nginx reload fault" + list);
}

double percentile(std::vector<double> values, double p) {
  if (values.empty())
    return 0;
  std::sort(values.begin(), values.end());
  auto rank = static_cast<std::size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(rank, values.size() - 1)];
}

}  // namespace

TEST_CASE("a rolling restart of three replicas under load fails no order", "[fault][rolling]") {
  std::signal(SIGPIPE, SIG_IGN);
  const auto seed = static_cast<std::uint64_t>(
      env_number("ROLL_SEED", static_cast<long>(std::random_device{}() & 0x7fffffff)));
  const auto rate = std::clamp(env_number("ROLL_RATE", 300), 1L, 2000L);
  if (!std::getenv("TEST_LOG_DIR"))
    ::setenv("TEST_LOG_DIR", FAULT_LOG_DIR, 1);  // before any thread reads the environment
  test::run_script(fmt::format("mkdir -p '{}'", std::getenv("TEST_LOG_DIR")));
  std::cout << fmt::format("rolling restart: seed {} (ROLL_SEED repeats it), {} orders/s", seed,
                           rate)
            << std::endl;
  std::mt19937_64 rng(seed);

  services_guard guard;
  REQUIRE(test::run_script(infra + "scripts/infra/postgres start fault --fresh") == 0);
  REQUIRE(test::run_script(infra + "scripts/infra/kafka start fault --fresh") == 0);
  test::simulator_process gateway(gateway_port);
  auto replica_env = replica_settings(gateway.url());
  replica_env["SHUTDOWN_TIMEOUT"] = "15000";  // the default drain budget, as in production
  std::vector<std::unique_ptr<test::server_process>> replicas;
  for (auto port : replica_ports) {
    auto env = replica_env;
    env["HTTP_PORT"] = std::to_string(port);
    replicas.push_back(std::make_unique<test::server_process>(env));
    replicas.back()->start();  // one after the other: the first migrates and creates topics
    replicas.back()->wait_until_ready(90s);
  }
  REQUIRE(test::run_script(fmt::format("{} scripts/infra/nginx start fault {} {} {}", infra,
                                       replica_ports[0], replica_ports[1], replica_ports[2])) == 0);

  const std::string run = fmt::format("r{:x}", seed & 0xffffff);
  std::vector<std::string> customers;
  for (int i = 1; i <= 20; ++i) {
    customers.push_back(fmt::format("{}-cust-{}", run, i));
    test::put_customer(lb_port, customers.back(), "buyer@example.com");
  }
  // Enough stock for every order of the longest run; scarce products run out on purpose.
  const std::int64_t plenty_stock = 200 * rate;
  std::vector<product> plenty;
  for (int i = 1; i <= 8; ++i)
    plenty.push_back({fmt::format("{}-plenty-{}", run, i), 199 + 150 * i, plenty_stock});
  std::vector<product> scarce = {{run + "-scarce-1", 4900, 40}, {run + "-scarce-2", 1575, 80}};
  std::map<std::string, std::int64_t> initial_stock;
  for (const auto* list : {&plenty, &scarce})
    for (const auto& p : *list) {
      test::put_product(lb_port, p.id, "Rolling restart product", money_text(p.price_cents),
                        p.stock);
      initial_stock[p.id] = p.stock;
    }

  // Orders for at most 150 s of load; the clients stop when the roll is over.
  const auto capacity = static_cast<std::size_t>(150 * rate);
  std::vector<order_record> orders;
  orders.reserve(capacity);
  for (std::size_t i = 0; i < capacity; ++i)
    orders.push_back(make_order(rng, i, run, plenty, scarce, customers));

  const auto t0 = steady::now();
  const auto wall0 = wall::now();
  const auto period = std::chrono::duration<double>(1.0 / static_cast<double>(rate));
  auto due = [&](std::size_t i) {
    return t0 + std::chrono::duration_cast<steady::duration>(period * static_cast<double>(i));
  };
  timeline events(t0);
  std::atomic<bool> stop_load{false};
  std::atomic<std::size_t> next{0};
  double roll_started = 0, roll_ended = 0;
  std::vector<std::string> roll_errors;
  {
    std::vector<std::jthread> clients;
    for (int w = 0; w < 96; ++w)
      clients.emplace_back([&, w] {
        std::mt19937 jitter(static_cast<std::uint32_t>(seed) + static_cast<std::uint32_t>(w));
        for (;;) {
          auto i = next.fetch_add(1);
          if (i >= orders.size() || stop_load)
            return;
          std::this_thread::sleep_until(due(i));
          if (stop_load)
            return;
          place(orders[i], due(i) + 30s, jitter);
        }
      });
    events.note(fmt::format("load starts: {} orders/s through nginx :{}", rate, lb_port));

    // The roll, on this thread: the replicas it starts die with the thread that forked them.
    std::this_thread::sleep_for(10s);  // the load runs warm before the first replica goes
    roll_started = events.seconds();
    for (std::size_t i = 0; i < replicas.size(); ++i) {
      const auto port = replica_ports[i];
      std::vector<unsigned short> others;
      for (auto p : replica_ports)
        if (p != port)
          others.push_back(p);
      if (nginx_upstreams(others) != 0)
        roll_errors.push_back(fmt::format("nginx did not take :{} out", port));
      auto stopping = steady::now();
      int status = replicas[i]->terminate(30s);
      events.note(fmt::format("replica :{} out of nginx, SIGTERM: exited with {} after {:.1f} s",
                              port, status,
                              std::chrono::duration<double>(steady::now() - stopping).count()));
      if (status != 0)
        roll_errors.push_back(fmt::format("replica :{} exited with {} on SIGTERM", port, status));
      auto starting = steady::now();
      if (!replicas[i]->spawn(true) || !replicas[i]->ready_within(60s))
        roll_errors.push_back(fmt::format("the new replica :{} did not become ready", port));
      events.note(fmt::format("new replica :{} ready after {:.1f} s", port,
                              std::chrono::duration<double>(steady::now() - starting).count()));
      if (nginx_upstreams({replica_ports.begin(), replica_ports.end()}) != 0)
        roll_errors.push_back(fmt::format("nginx did not take :{} back", port));
      std::this_thread::sleep_for(
          3s);  // the next pod goes once this one serves, as maxUnavailable 1
    }
    roll_ended = events.seconds();
    std::this_thread::sleep_for(10s);  // and the load goes on a while on the new replicas
    stop_load = true;
  }
  events.note("load over");
  for (const auto& e : roll_errors)
    FAIL_CHECK(e);

  auto counts = check_outcomes(orders, initial_stock, events);
  std::size_t requests = 0;
  for (const auto& o : orders)
    requests += static_cast<std::size_t>(o.attempts);
  CHECK(counts.unknown == 0);  // no order failed after the client's retries
  CHECK(counts.accepted == counts.sent);
  for (const auto& [status, n] : counts.by_final) {
    INFO(n << " orders ended " << status);
    CHECK(status.find("_TIMEOUT") == std::string::npos);  // no deadline cancellation
  }

  // End to end: from the order's intended send time to its final state, for the orders sent
  // while the roll went on.
  std::vector<double> before_roll_ms, during_roll_ms;
  auto finished_at = with_db([](pqxx::work& tx) {
    std::map<std::string, double> out;  // order id -> epoch seconds of its last event
    for (const auto& r : tx.exec("SELECT order_id, extract(epoch FROM (history[1]).at)::float8"
                                 " FROM orders"))
      out[r[0].as<std::string>()] = r[1].as<double>();
    return out;
  });
  const double wall0_s = std::chrono::duration<double>(wall0.time_since_epoch()).count();
  for (std::size_t i = 0; i < orders.size(); ++i) {
    const auto& o = orders[i];
    double sent_s = std::chrono::duration<double>(due(i) - t0).count();
    auto it = finished_at.find(o.order_id);
    if (o.order_id.empty() || it == finished_at.end() || sent_s > roll_ended)
      continue;
    // The first seconds are the replicas' own start; the rest of the warm load is the baseline.
    auto& bucket = sent_s >= roll_started ? during_roll_ms : before_roll_ms;
    if (sent_s >= roll_started || sent_s >= roll_started / 2)
      bucket.push_back((it->second - (wall0_s + sent_s)) * 1000.0);
  }
  std::string finals;
  for (const auto& [status, n] : counts.by_final)
    finals += fmt::format(" {}={}", status, n);
  std::cout << fmt::format(
                   "rolling restart summary: seed {} | {} orders/s | orders sent {}, accepted {}, "
                   "failed after retries {} | requests {}, orders retried {} | final:{} | "
                   "roll {:.1f} s | end to end during the roll ({} orders): p50 {:.0f} ms, "
                   "p99 {:.0f} ms, max {:.0f} ms; in the {:.0f} s before it ({} orders): "
                   "p50 {:.0f} ms, p99 {:.0f} ms",
                   seed, rate, counts.sent, counts.accepted, counts.unknown + counts.rejected,
                   requests, counts.retried, finals, roll_ended - roll_started,
                   during_roll_ms.size(), percentile(during_roll_ms, 0.5),
                   percentile(during_roll_ms, 0.99), percentile(during_roll_ms, 1.0),
                   roll_started / 2, before_roll_ms.size(), percentile(before_roll_ms, 0.5),
                   percentile(before_roll_ms, 0.99))
            << std::endl;
  CHECK_FALSE(during_roll_ms.empty());

  for (auto& r : replicas)
    r->terminate(20s);
}
