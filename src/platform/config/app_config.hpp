#pragma once
// The server's configuration: parsed and validated once at start-up, then handed out
// subsystem by subsystem as narrow structs. Every key, its default and the environment
// variables that override it are listed in app_config.cpp (and in the README).

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace op::config {

using std::chrono::milliseconds;

struct topic_config {
  std::string name;
  int partitions = 6;
};

struct kafka_config {
  std::string bootstrap_servers;
  std::string group_id;
  bool create_topics = true;
  int replication_factor = 1;
  topic_config order_placed;
  topic_config order_validated;
  topic_config inventory_reserved;
  topic_config payment_processed;
  topic_config order_confirmed;
  topic_config order_failed;
  topic_config dlq_orders;
  std::map<std::string, topic_config> step_topics;  // of the steps a program added, by name

  std::vector<topic_config> all_topics() const {
    std::vector<topic_config> out = {order_placed,      order_validated, inventory_reserved,
                                     payment_processed, order_confirmed, order_failed,
                                     dlq_orders};
    for (const auto& [step, topic] : step_topics)
      out.push_back(topic);
    return out;
  }
};

struct database_config {
  std::string url;  // libpq URI or key=value conninfo; a "jdbc:" prefix is accepted
  int pool_size = 16;
  milliseconds connect_timeout{3000};
};

struct http_config {
  std::string address = "0.0.0.0";
  std::uint16_t port = 8080;
  std::size_t body_limit_bytes = 1024 * 1024;
  std::size_t header_limit_bytes = 8192;  // request line and headers
  milliseconds read_timeout{30000};       // per request, and for an idle keep-alive connection
  std::size_t max_connections = 10000;
  std::size_t max_waiting_requests = 10000;  // GET /api/orders/{id}?waitFor=final at once
  std::size_t max_pending_orders = 256;      // POST /api/orders being placed at once; 0: any
  int threads = 0;                           // 0: one per core
  // False: a worker replica serves only /actuator/* and /metrics; /api/* and the API docs
  // are not routed (404).
  bool api_enabled = true;
};

// The saga stages, in pipeline order. These names are also the `stage` label of the metrics
// and the stage of a dead letter.
inline constexpr std::array<std::string_view, 4> all_stages = {"validate", "reserve", "pay",
                                                               "confirm"};

// Which stages this replica consumes, so that one stage can be scaled on its own.
struct stages_config {
  std::vector<std::string> enabled{all_stages.begin(), all_stages.end()};  // pipeline order

  bool runs(std::string_view stage) const {
    for (const auto& s : enabled)
      if (s == stage)
        return true;
    return false;
  }
};

struct retry_config {
  int max_attempts = 3;
  milliseconds backoff_delay{1000};
};

// Resilience4j's names and meaning: the breaker opens when at least failure_rate_threshold
// percent of the last sliding_window_size calls failed (once minimum_calls were made), stays
// open for open_duration, then lets half_open_calls trial calls through.
struct circuit_breaker_config {
  int failure_rate_threshold = 50;
  int sliding_window_size = 20;
  int minimum_calls = 10;
  milliseconds open_duration{10000};
  int half_open_calls = 3;
};

struct payment_config {
  milliseconds timeout{5000};
  int max_retries = 3;
  std::string gateway_url;
  circuit_breaker_config circuit_breaker;
};

// How long a saga may sit in each step before the sweeper compensates it.
struct saga_config {
  milliseconds validation_deadline{300000};
  milliseconds reservation_deadline{300000};
  milliseconds payment_deadline{120000};
  milliseconds confirmation_deadline{300000};
  std::map<std::string, milliseconds> step_deadlines;  // of the steps a program added
  milliseconds sweep_interval{1000};
  milliseconds republish_after{30000};
};

// How long transient rows are kept before the retention job deletes them.
struct retention_config {
  milliseconds interval{60000};
  std::chrono::hours event_claims{48};
  std::chrono::hours idempotency_keys{24};
  std::chrono::hours replayed_dead_letters{168};
  int batch_size = 5000;
};

struct dlq_config {
  int replay_rate = 50;  // messages per second a bulk replay re-injects at most
};

// The operator dashboard (/dashboard): one snapshot per interval, shared by every viewer.
struct dashboard_config {
  milliseconds interval{1000};
  int max_clients = 32;  // open /dashboard/stream connections; more get 503
};

struct orders_config {
  int max_quantity = 1000;
  int max_items = 100;
};

struct admin_config {
  std::string token;  // empty: the admin API refuses every request
};

struct logging_config {
  std::string root_level = "info";
  std::map<std::string, std::string> levels;  // logger name -> level
};

struct runtime_config {
  milliseconds shutdown_timeout{15000};
  milliseconds health_interval{1000};
};

struct app_config {
  http_config http;
  kafka_config kafka;
  stages_config stages;
  database_config database;
  retry_config retry;
  payment_config payment;
  saga_config saga;
  dlq_config dlq;
  retention_config retention;
  dashboard_config dashboard;
  orders_config orders;
  admin_config admin;
  logging_config logging;
  runtime_config runtime;
};

struct config_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using env_lookup = std::function<std::optional<std::string>(const std::string&)>;

// A saga step a program adds to the built-in four: it brings its own keys,
// app.kafka.topics.<name>.name / .partitions and app.saga.deadline.<name>, and its name is
// a stage app.stages.enabled accepts (and runs by default).
struct step_keys {
  std::string name;
  std::string default_topic;
  milliseconds default_deadline{300000};
};

// Reads the process environment.
env_lookup process_environment();

// Loads a YAML file (when given), applies environment overrides and validates every value.
// Unknown keys, malformed values and out-of-range numbers throw config_error naming the key.
app_config load(const std::optional<std::string>& yaml_path, const env_lookup& env,
                const std::vector<step_keys>& added_steps = {});

// Same, from YAML text; used by tests.
app_config load_from_string(const std::string& yaml_text, const env_lookup& env,
                            const std::vector<step_keys>& added_steps = {});

// One line per key: "key  default  ENV_VARS  description", for --help-config.
std::string describe_keys(const std::vector<step_keys>& added_steps = {});

}  // namespace op::config
