#pragma once
// What the fault-injection tests share: the 'fault' instance's services, a shop's checkout
// client that retries with its Idempotency-Key, the gateway simulator's books, and the
// checks that every accepted order ended final with money and stock reconciled.

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <iostream>
#include <map>
#include <mutex>
#include <pqxx/pqxx>
#include <random>
#include <string>
#include <vector>

#include "support/test_environment.hpp"

namespace op::fault {

using steady = std::chrono::steady_clock;

constexpr unsigned short lb_port = 25080;
constexpr unsigned short gateway_port = 25090;
inline const std::string db_url = "postgresql://orders@127.0.0.1:25732/orderdb";
inline const std::string kafka_brokers = "127.0.0.1:25092";
// The ports above are the 'fault' instance's; port variables inherited from the caller's
// environment must not move the services elsewhere.
inline const std::string infra =
    "env -u PG_PORT -u KAFKA_PORT -u KAFKA_CONTROLLER_PORT -u LB_PORT ";

long env_number(const char* name, long fallback);
std::string money_text(std::int64_t cents);

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
const char* to_string(order_kind k);

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
                        const std::vector<std::string>& customers);

// Places one order as a shop's checkout would: the same Idempotency-Key on every attempt,
// retrying connection errors, timeouts and 5xx with backoff, a bounded number of times.
void place(order_record& o, steady::time_point give_up, std::mt19937& rng);

// POST /control on the simulator, retried: the fault must really start and end.
bool gateway_control(const std::string& json);
inline const std::string gateway_healthy =
    R"({"outage":false,"failureRate":0,"latencyMs":0,"jitterMs":0,"timeoutMs":0})";

struct gateway_ledger {
  std::int64_t charges = 0;
  std::int64_t captured = 0;
  std::int64_t refunded = 0;
  std::int64_t attempts = 0;
  bool read = false;
};
gateway_ledger ledger_of(const std::string& order_id);

struct db_order {
  std::string status;
  std::string reason;
  std::string detail;
  std::int64_t total_cents = 0;
  int saga_step_index = 0;  // the place of the step its saga waits for
  double age_seconds = 0;
};

struct db_payment {
  std::int64_t amount_cents = 0;
  std::string refund_state;  // "" for NULL
  std::int64_t refunded_cents = 0;
};

bool is_final(const std::string& status);

// The database the replicas share; a connection per use, since PostgreSQL restarts.
template <typename F>
auto with_db(F&& f) {
  pqxx::connection c(db_url);
  pqxx::work tx(c);
  return f(tx);
}

std::map<std::string, db_order> read_orders();

// The replicas' configuration: the fault instance's services, and short waits so that
// everything settles within the test's bounded drain.
std::map<std::string, std::string> replica_settings(const std::string& gateway_url);

std::size_t count_lines_with(const std::string& path, const std::string& needle);

// What the clients and the database say once the load is over.
struct outcome_counts {
  std::size_t sent = 0, accepted = 0, unknown = 0, resolved = 0, rejected = 0, retried = 0;
  std::map<std::string, int> by_final;  // "STATUS" or "STATUS/REASON" -> orders
  std::map<std::string, db_order> db;   // every order in the database, as last read
};

// Waits (bounded) for every order to be final and every refund settled, then checks with
// Catch2 that each answered order exists once, ended as its content decides, was charged at
// most once, that the gateway's net captured money equals the confirmed totals and that the
// stock of `initial_stock` reconciles. Call from the test's main thread.
outcome_counts check_outcomes(std::vector<order_record>& orders,
                              const std::map<std::string, std::int64_t>& initial_stock,
                              timeline& events);

}  // namespace op::fault
