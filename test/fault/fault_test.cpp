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

#include "support/catalog_fixture.hpp"
#include "support/http_client.hpp"
#include "support/server_process.hpp"
#include "support/simulator_process.hpp"
#include "support/test_environment.hpp"

using namespace op;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

constexpr unsigned short lb_port = 25080;
constexpr std::array<unsigned short, 2> replica_ports{25081, 25082};
constexpr unsigned short gateway_port = 25090;
const std::string db_url = "postgresql://orders@127.0.0.1:25732/orderdb";
const std::string kafka_brokers = "127.0.0.1:25092";
// The ports above are the 'fault' instance's; port variables inherited from the caller's
// environment must not move the services elsewhere.
const std::string infra = "env -u PG_PORT -u KAFKA_PORT -u KAFKA_CONTROLLER_PORT -u LB_PORT ";

long env_number(const char* name, long fallback) {
  const char* value = std::getenv(name);
  return value && *value ? std::strtol(value, nullptr, 10) : fallback;
}

std::string money_text(std::int64_t cents) {
  return fmt::format("{}.{:02}", cents / 100, cents % 100);
}

// What happened when, printed as it happens (from any thread) and kept for the summary.
class timeline {
 public:
  explicit timeline(steady::time_point t0) : t0_(t0) {}
  double seconds() const { return std::chrono::duration<double>(steady::now() - t0_).count(); }
  void note(const std::string& what) {
    std::lock_guard lock(mutex_);
    auto line = fmt::format("[fault {:7.2f}s] {}", seconds(), what);
    std::cout << line << std::endl;
    lines_.push_back(line);
  }
  std::vector<std::string> lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }

 private:
  steady::time_point t0_;
  std::mutex mutex_;
  std::vector<std::string> lines_;
};

// Stops every service the test starts, in reverse order, whatever way the test ends; each
// stop is a no-op for a service that is not running.
struct services_guard {
  ~services_guard() {
    test::run_script(infra + "scripts/infra/nginx stop fault");
    test::run_script(infra + "scripts/infra/kafka stop fault");
    test::run_script(infra + "scripts/infra/postgres stop fault");
  }
};

struct product {
  std::string id;
  std::int64_t price_cents;
  std::int64_t stock;
};

enum class order_kind { valid, declined, invalid_total, scarce };
const char* to_string(order_kind k) {
  switch (k) {
    case order_kind::valid:
      return "valid";
    case order_kind::declined:
      return "declined card";
    case order_kind::invalid_total:
      return "invalid total";
    case order_kind::scarce:
      return "scarce product";
  }
  return "?";
}

enum class outcome { not_sent, accepted, unknown, rejected };

struct order_record {
  order_kind kind = order_kind::valid;
  std::string key;
  std::string body;
  outcome result = outcome::not_sent;
  std::string order_id;  // from the 200 answer, or the database for an unknown outcome
  int attempts = 0;
  std::string last_error;
  std::vector<std::string> failures;  // why each failed attempt failed, in short
};

order_record make_order(std::mt19937_64& rng, std::size_t index, const std::string& run,
                        const std::vector<product>& plenty, const std::vector<product>& scarce,
                        const std::vector<std::string>& customers) {
  auto pick = [&rng](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  order_record o;
  auto roll = pick(100);
  o.kind = roll < 60   ? order_kind::valid
           : roll < 72 ? order_kind::declined
           : roll < 85 ? order_kind::invalid_total
                       : order_kind::scarce;
  o.key = fmt::format("{}-{}", run, index);
  std::vector<std::pair<const product*, int>> lines;
  auto add_plenty = [&](std::size_t count) {
    auto first = pick(plenty.size());
    for (std::size_t i = 0; i < count; ++i)
      lines.emplace_back(&plenty[(first + i) % plenty.size()], 1 + static_cast<int>(pick(3)));
  };
  if (o.kind == order_kind::scarce) {
    lines.emplace_back(&scarce[pick(scarce.size())], 1 + static_cast<int>(pick(2)));
    if (pick(2) == 0)
      add_plenty(1);
  } else {
    add_plenty(1 + pick(3));
  }
  std::int64_t total = 0;
  std::string items;
  for (const auto& [p, quantity] : lines) {
    total += p->price_cents * quantity;
    items += fmt::format(R"({}{{"productId":"{}","quantity":{},"price":{}}})",
                         items.empty() ? "" : ",", p->id, quantity, money_text(p->price_cents));
  }
  if (o.kind == order_kind::invalid_total)
    total += 1;
  o.body = fmt::format(
      R"({{"customerId":"{}","customerEmail":"buyer@example.com","totalAmount":{},"paymentMethod":"{}","items":[{}]}})",
      customers[pick(customers.size())], money_text(total),
      o.kind == order_kind::declined ? "pm_card_chargeDeclined" : "pm_card_visa", items);
  return o;
}

// Places one order as a shop's checkout would: the same Idempotency-Key on every attempt,
// retrying connection errors, timeouts and 5xx with backoff, a bounded number of times.
void place(order_record& o, steady::time_point give_up, std::mt19937& rng) {
  for (int attempt = 1; attempt <= 8; ++attempt) {
    o.attempts = attempt;
    try {
      auto reply =
          test::http_call(lb_port, "POST", "/api/orders", o.body, {{"Idempotency-Key", o.key}}, 5s);
      if (reply.status == 200) {
        o.order_id = test::json_field(reply.body, "orderId");
        o.result = o.order_id.empty() ? outcome::unknown : outcome::accepted;
        if (o.order_id.empty())
          o.last_error = "200 without orderId: " + reply.body;
        return;
      }
      o.last_error = fmt::format("HTTP {} {}", reply.status, reply.body);
      o.failures.push_back(fmt::format("HTTP {}", reply.status));
      if (reply.status < 500 && reply.status != 408 && reply.status != 429) {
        o.result = outcome::rejected;
        return;
      }
    } catch (const std::exception& e) {
      o.last_error = e.what();
      o.failures.push_back(e.what());
    }
    if (steady::now() > give_up)
      break;
    auto backoff = std::min(3000, 200 << (attempt - 1)) + static_cast<int>(rng() % 100);
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
  }
  o.result = outcome::unknown;
}

// POST /control on the simulator, retried: the fault must really start and end.
bool gateway_control(const std::string& json) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    try {
      if (test::http_call(gateway_port, "POST", "/control", json, {}, 2s).status == 200)
        return true;
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(250ms);
  }
  return false;
}
const std::string gateway_healthy =
    R"({"outage":false,"failureRate":0,"latencyMs":0,"jitterMs":0,"timeoutMs":0})";

struct gateway_ledger {
  std::int64_t charges = 0;
  std::int64_t captured = 0;
  std::int64_t refunded = 0;
  std::int64_t attempts = 0;
  bool read = false;
};

gateway_ledger ledger_of(const std::string& order_id) {
  gateway_ledger out;
  try {
    auto reply = test::http_call(gateway_port, "GET", "/v1/orders/" + order_id, "", {}, 5s);
    if (reply.status != 200)
      return out;
    rapidjson::Document doc;
    doc.Parse(reply.body.c_str());
    if (!doc.IsObject())
      return out;
    auto number = [&doc](const char* name) {
      return doc.HasMember(name) && doc[name].IsInt64() ? doc[name].GetInt64() : 0;
    };
    out.charges = number("charges");
    out.captured = number("capturedCents");
    out.refunded = number("refundedCents");
    out.attempts = number("chargeAttempts");
    out.read = true;
  } catch (const std::exception&) {
  }
  return out;
}

struct db_order {
  std::string status;
  std::string reason;
  std::string detail;
  std::int64_t total_cents = 0;
  std::string saga_state;
  double age_seconds = 0;
};

struct db_payment {
  std::int64_t amount_cents = 0;
  std::string refund_state;  // "" for NULL
  std::int64_t refunded_cents = 0;
};

bool is_final(const std::string& status) {
  return status == "CONFIRMED" || status == "CANCELLED" || status == "FAILED";
}

// The database the replicas share; a connection per use, since PostgreSQL restarts.
template <typename F>
auto with_db(F&& f) {
  pqxx::connection c(db_url);
  pqxx::work tx(c);
  return f(tx);
}

std::map<std::string, db_order> read_orders() {
  return with_db([](pqxx::work& tx) {
    std::map<std::string, db_order> out;
    for (const auto& r :
         tx.exec("SELECT o.order_id, o.status, coalesce(o.cancel_reason, ''),"
                 " coalesce(o.cancel_detail, ''), o.total_cents, coalesce(s.state, ''),"
                 " extract(epoch FROM now() - o.updated_at)::float8"
                 " FROM orders o LEFT JOIN sagas s USING (order_id)")) {
      out[r[0].as<std::string>()] = {r[1].as<std::string>(), r[2].as<std::string>(),
                                     r[3].as<std::string>(), r[4].as<std::int64_t>(),
                                     r[5].as<std::string>(), r[6].as<double>()};
    }
    return out;
  });
}

// The replicas' configuration: the fault instance's services, and short waits so that
// everything settles within the test's bounded drain.
std::map<std::string, std::string> replica_settings(const std::string& gateway_url) {
  return {
      {"DB_URL", db_url},
      {"KAFKA_BROKERS", kafka_brokers},
      {"KAFKA_GROUP_ID", "order-pipeline-fault"},
      {"PAYMENT_GATEWAY_URL", gateway_url},
      {"ADMIN_TOKEN", test::test_admin_token},
      {"DB_POOL_SIZE", "8"},
      {"SHUTDOWN_TIMEOUT", "3000"},
      {"APP_HEALTH_INTERVAL", "200"},
      {"APP_RETRY_BACKOFF_DELAY", "200"},
      // One attempt and two retries of 1 s each: the pay stage gives up after about 3.2 s.
      {"APP_PAYMENT_TIMEOUT", "1000"},
      {"APP_PAYMENT_MAX_RETRIES", "2"},
      {"APP_PAYMENT_CIRCUIT_BREAKER_WAIT_DURATION_IN_OPEN_STATE", "2000"},
      {"APP_SAGA_DEADLINE_VALIDATION", "60000"},
      {"APP_SAGA_DEADLINE_RESERVATION", "60000"},
      {"APP_SAGA_DEADLINE_PAYMENT", "30000"},
      {"APP_SAGA_DEADLINE_CONFIRMATION", "60000"},
      {"APP_SAGA_SWEEP_INTERVAL", "1000"},
  };
}

std::size_t count_lines_with(const std::string& path, const std::string& needle) {
  std::ifstream in(path);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);)
    n += line.find(needle) != std::string::npos;
  return n;
}

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

  // --- what the clients know ------------------------------------------------------------
  std::size_t sent = 0, accepted = 0, unknown = 0, rejected = 0, resolved = 0;
  {
    std::map<std::string, std::string> order_of_key;
    with_db([&](pqxx::work& tx) {
      for (const auto& r : tx.exec("SELECT idempotency_key, order_id FROM idempotency_keys"))
        order_of_key[r[0].as<std::string>()] = r[1].as<std::string>();
      return 0;
    });
    for (auto& o : orders) {
      if (o.result == outcome::not_sent)
        continue;
      ++sent;
      if (o.result == outcome::accepted) {
        ++accepted;
        auto it = order_of_key.find(o.key);
        INFO("key " << o.key << " answered order " << o.order_id);
        CHECK((it != order_of_key.end() && it->second == o.order_id));
      } else if (o.result == outcome::unknown) {
        ++unknown;
        // The client never heard back: the database says whether the order was created.
        if (auto it = order_of_key.find(o.key); it != order_of_key.end()) {
          o.order_id = it->second;
          ++resolved;
        }
      } else {
        ++rejected;
      }
    }
    events.note(fmt::format(
        "clients: {} orders sent, {} accepted, {} outcome unknown ({} of them created), "
        "{} rejected",
        sent, accepted, unknown, resolved, rejected));
  }
  int shown = 0;
  for (const auto& o : orders)
    if (o.result == outcome::rejected && shown++ < 10) {
      INFO("a well-formed " << to_string(o.kind) << " order (key " << o.key
                            << ") was refused: " << o.last_error);
      CHECK(o.result != outcome::rejected);
    }
  CHECK(rejected == 0);
  std::map<std::string, int> retry_reasons;
  std::size_t retried = 0;
  for (const auto& o : orders) {
    retried += !o.failures.empty();
    for (const auto& f : o.failures)
      ++retry_reasons[f];
  }
  {
    std::string reasons;
    for (const auto& [why, n] : retry_reasons)
      reasons += fmt::format("; {} x {}", n, why);
    events.note(fmt::format("{} orders needed more than one attempt{}", retried, reasons));
  }
  CHECK(accepted > sent / 2);  // the pipeline kept taking orders through the faults

  // --- every order reaches a final state ------------------------------------------------
  std::map<std::string, db_order> db;
  {
    const auto drain_deadline = steady::now() + 150s;
    auto last_report = steady::now() - 1h;
    for (;;) {
      try {
        db = read_orders();
      } catch (const std::exception& e) {
        events.note(std::string("reading orders failed: ") + e.what());
      }
      std::map<std::string, int> by_status;
      for (const auto& [id, o] : db)
        ++by_status[o.status];
      std::size_t open = 0;
      for (const auto& [status, n] : by_status)
        if (!is_final(status))
          open += static_cast<std::size_t>(n);
      if (open == 0 || steady::now() > drain_deadline || steady::now() - last_report > 10s) {
        std::string counts;
        for (const auto& [status, n] : by_status)
          counts += fmt::format(" {}={}", status, n);
        events.note(fmt::format("orders in the database:{}", counts));
        last_report = steady::now();
      }
      if (open == 0 || steady::now() > drain_deadline)
        break;
      std::this_thread::sleep_for(1s);
    }
  }

  // Every order in the database belongs to exactly one Idempotency-Key the clients used.
  std::map<std::string, const order_record*> record_of;
  for (const auto& o : orders)
    if (!o.order_id.empty())
      record_of[o.order_id] = &o;
  for (const auto& [id, o] : db) {
    INFO("order " << id << " (" << o.status << ") exists without a client's key: a duplicate?");
    CHECK(record_of.count(id) == 1);
  }
  for (const auto& [id, o] : record_of) {
    INFO("order " << id << " (key " << o->key << ") was answered but is not in the database");
    CHECK(db.count(id) == 1);
  }

  // --- refunds settle: no PENDING refund, no money kept for a cancelled order -----------
  std::map<std::string, db_payment> payments;
  std::map<std::string, gateway_ledger> ledgers;
  {
    const auto refund_deadline = steady::now() + 60s;
    for (;;) {
      payments.clear();
      try {
        with_db([&](pqxx::work& tx) {
          for (const auto& r : tx.exec("SELECT order_id, amount_cents,"
                                       " coalesce(refund_state, ''), refunded_cents FROM payments"))
            payments[r[0].as<std::string>()] = {r[1].as<std::int64_t>(), r[2].as<std::string>(),
                                                r[3].as<std::int64_t>()};
          return 0;
        });
      } catch (const std::exception& e) {
        events.note(std::string("reading payments failed: ") + e.what());
      }
      std::size_t pending = 0, kept = 0;
      for (const auto& [id, p] : payments)
        pending += p.refund_state == "PENDING";
      for (const auto& [id, o] : db) {
        if (o.status == "CONFIRMED" && ledgers.count(id) && ledgers[id].read)
          continue;  // a confirmed order's charge does not change any more
        auto ledger = ledger_of(id);
        ledgers[id] = ledger;
        kept += o.status != "CONFIRMED" && ledger.captured != ledger.refunded;
      }
      if ((pending == 0 && kept == 0) || steady::now() > refund_deadline) {
        events.note(
            fmt::format("refunds: {} pending in the database, {} cancelled orders with money kept",
                        pending, kept));
        break;
      }
      std::this_thread::sleep_for(2s);
    }
  }

  // --- per order: final, charged at most once, money matches the outcome ----------------
  std::map<std::string, int> by_final;
  std::size_t stuck = 0, double_charged = 0, money_wrong = 0, unexpected = 0, failed_no_dlq = 0;
  bool dlq_table = with_db([](pqxx::work& tx) {
    return !tx.exec("SELECT to_regclass('dead_letters')")[0][0].is_null();
  });
  std::int64_t confirmed_cents = 0;
  const int show = 20;  // per kind of problem: enough to debug, not a flood
  for (const auto& [id, o] : db) {
    const auto* rec = record_of.count(id) ? record_of[id] : nullptr;
    const char* kind = rec ? to_string(rec->kind) : "unknown kind";
    auto status_text = o.status + (o.reason.empty() ? "" : "/" + o.reason);
    ++by_final[status_text];
    const auto& ledger = ledgers[id];
    INFO("order " << id << " (" << kind << "): status " << status_text << " saga " << o.saga_state
                  << ", detail '" << o.detail << "', total " << o.total_cents
                  << ", gateway charges " << ledger.charges << " attempts " << ledger.attempts
                  << " captured " << ledger.captured << " refunded " << ledger.refunded);
    if (!is_final(o.status)) {
      if (stuck++ < show)
        FAIL_CHECK("order " << id << " is stuck in " << o.status << " (saga " << o.saga_state
                            << ", unchanged for " << static_cast<int>(o.age_seconds) << " s)");
      continue;
    }
    if (o.status == "FAILED") {
      std::int64_t letters = 0;
      if (dlq_table)
        letters = with_db([&id](pqxx::work& tx) {
          return tx.exec_params("SELECT count(*) FROM dead_letters WHERE order_id = $1", id)[0][0]
              .as<std::int64_t>();
        });
      if (letters == 0 && failed_no_dlq++ < show)
        FAIL_CHECK("order " << id << " is FAILED without an entry in dead_letters"
                            << (dlq_table ? "" : " (the table does not exist)"));
    }
    if (!ledger.read) {
      if (money_wrong++ < show)
        FAIL_CHECK("the gateway's ledger of order " << id << " could not be read");
      continue;
    }
    if (ledger.charges > 1 && double_charged++ < show)
      FAIL_CHECK("order " << id << " was charged " << ledger.charges << " times");
    auto payment = payments.find(id);
    if (o.status == "CONFIRMED") {
      confirmed_cents += o.total_cents;
      bool ok = ledger.charges == 1 && ledger.captured == o.total_cents && ledger.refunded == 0 &&
                payment != payments.end() && payment->second.amount_cents == o.total_cents &&
                payment->second.refund_state.empty();
      if (!ok && money_wrong++ < show)
        FAIL_CHECK("confirmed order "
                   << id << " did not have exactly its total captured once ("
                   << "payments row: "
                   << (payment == payments.end() ? std::string("none")
                                                 : fmt::format("amount {} refund_state '{}'",
                                                               payment->second.amount_cents,
                                                               payment->second.refund_state))
                   << ")");
    } else {
      bool kept = ledger.captured != ledger.refunded;
      bool refund_recorded =
          payment != payments.end() && payment->second.refund_state == "REFUNDED";
      if ((kept || (ledger.captured > 0 && !refund_recorded)) && money_wrong++ < show)
        FAIL_CHECK(
            o.status << " order " << id << " was charged " << ledger.captured << " and refunded "
                     << ledger.refunded << " at the gateway; payments"
                     << " refund_state '"
                     << (payment == payments.end() ? "(no row)" : payment->second.refund_state)
                     << "'");
    }
    // Outcomes the order's content decides, whatever the faults.
    if (rec) {
      bool fits = true;
      if (rec->kind == order_kind::invalid_total)
        fits = o.status == "CANCELLED" && o.reason == "VALIDATION_FAILED";
      else if (rec->kind == order_kind::declined)
        fits = o.status != "CONFIRMED";
      else
        fits = o.reason != "VALIDATION_FAILED";
      if (!fits && unexpected++ < show)
        FAIL_CHECK("a " << kind << " order " << id << " ended " << status_text);
    }
  }
  CHECK(stuck == 0);
  CHECK(failed_no_dlq == 0);
  CHECK(double_charged == 0);
  CHECK(money_wrong == 0);
  CHECK(unexpected == 0);

  // --- the gateway's books and the stock reconcile ----------------------------------------
  std::int64_t net_captured = 0;
  {
    auto reply = test::http_call(gateway_port, "GET", "/v1/stats", "", {}, 5s);
    REQUIRE(reply.status == 200);
    rapidjson::Document doc;
    doc.Parse(reply.body.c_str());
    REQUIRE(doc.IsObject());
    net_captured = doc["capturedCents"].GetInt64() - doc["refundedCents"].GetInt64();
    INFO("gateway stats " << reply.body);
    CHECK(net_captured == confirmed_cents);
  }
  std::map<std::string, std::int64_t> sold_by_confirmed;
  std::map<std::string, test::stock_levels> stock;
  with_db([&](pqxx::work& tx) {
    for (const auto& r : tx.exec("SELECT i.product_id, sum(i.quantity)::bigint FROM order_items i"
                                 " JOIN orders o USING (order_id) WHERE o.status = 'CONFIRMED'"
                                 " GROUP BY i.product_id"))
      sold_by_confirmed[r[0].as<std::string>()] = r[1].as<std::int64_t>();
    for (const auto& r : tx.exec("SELECT product_id, available, reserved, sold FROM products"))
      stock[r[0].as<std::string>()] = {r[1].as<std::int64_t>(), r[2].as<std::int64_t>(),
                                       r[3].as<std::int64_t>()};
    return 0;
  });
  for (const auto& [id, initial] : initial_stock) {
    auto s = stock[id];
    INFO("product " << id << ": stocked " << initial << ", available " << s.available
                    << " reserved " << s.reserved << " sold " << s.sold
                    << ", confirmed orders hold " << sold_by_confirmed[id]);
    CHECK(s.available + s.reserved + s.sold == initial);
    CHECK(s.reserved == 0);
    CHECK(s.sold == sold_by_confirmed[id]);
  }

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
