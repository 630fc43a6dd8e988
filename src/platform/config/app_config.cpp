#include "platform/config/app_config.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>

namespace op::config {
namespace {

struct key_spec {
  std::string key;
  std::string default_value;
  std::vector<std::string> env_aliases;  // besides the relaxed APP_RETRY_MAX_ATTEMPTS form
  std::string description;
};

// Module names whose log level can be set with logging.level.<module> / LOGGING_LEVEL_<MODULE>.
const std::vector<std::string> log_modules = {"root",   "http",   "kafka",     "db",
                                              "orders", "saga",   "inventory", "payments",
                                              "outbox", "health", "app"};

struct topic_default {
  const char* key;
  const char* name;
  int partitions;
};
const topic_default topic_defaults[] = {
    {"order-placed", "orders.placed", 6},
    {"order-validated", "orders.validated", 6},
    {"inventory-reserved", "inventory.reserved", 6},
    {"payment-processed", "payments.processed", 6},
    {"order-confirmed", "orders.confirmed", 6},
    {"order-failed", "orders.failed", 6},
    {"dlq-orders", "dlq.orders", 3},
};

// The built-in stages and the added steps, comma separated: app.stages.enabled's default.
std::string all_stage_names(const std::vector<step_keys>& added_steps) {
  std::vector<std::string> names(all_stages.begin(), all_stages.end());
  for (const auto& step : added_steps)
    names.push_back(step.name);
  return fmt::format("{}", fmt::join(names, ","));
}

std::vector<key_spec> build_key_table(const std::vector<step_keys>& added_steps) {
  std::vector<key_spec> keys = {
      {"server.address", "0.0.0.0", {"HTTP_ADDRESS"}, "address the HTTP listener binds"},
      {"server.port", "8080", {"HTTP_PORT", "PORT"}, "HTTP port"},
      {"server.threads", "0", {"HTTP_THREADS"}, "I/O threads; 0 means one per core"},
      {"server.max-body-bytes", "1048576", {}, "largest accepted request body (413 above)"},
      {"server.max-header-bytes", "8192", {}, "largest accepted request head (431 above)"},
      {"server.read-timeout",
       "30000",
       {},
       "ms a client may take to send a request, head and body, and an idle keep-alive "
       "connection stays open"},
      {"server.max-connections",
       "10000",
       {},
       "open connections at most; further clients wait in the listen backlog"},
      {"server.max-waiting-requests",
       "10000",
       {},
       "requests waiting at once for an order's final state (GET ...?waitFor=final); more "
       "get 503"},
      {"server.max-pending-orders",
       "256",
       {},
       "orders being placed at once (POST /api/orders taken, not answered yet); more get 503 "
       "overloaded with Retry-After; 0: no limit"},
      {"server.shutdown-timeout",
       "15000",
       {"SHUTDOWN_TIMEOUT"},
       "ms allowed for a graceful drain on SIGTERM"},
      {"spring.kafka.bootstrap-servers",
       "localhost:9092",
       {"KAFKA_BROKERS"},
       "Kafka bootstrap servers, comma separated"},
      {"spring.kafka.consumer.group-id",
       "order-processing-group",
       {"KAFKA_GROUP_ID"},
       "consumer group shared by all replicas"},
      {"spring.datasource.url",
       "postgresql://orders@127.0.0.1:15432/orderdb",
       {"DB_URL"},
       "PostgreSQL URL (libpq URI; a jdbc: prefix is accepted)"},
      {"spring.datasource.username", "", {"DB_USER"}, "overrides the URL's user"},
      {"spring.datasource.password", "", {"DB_PASSWORD"}, "overrides the URL's password"},
      {"spring.datasource.pool-size", "16", {"DB_POOL_SIZE"}, "PostgreSQL connections per replica"},
      {"spring.datasource.connect-timeout", "3000", {}, "ms to wait for a PostgreSQL connection"},
      {"app.kafka.create-topics", "true", {}, "create missing topics at start-up"},
      {"app.stages.enabled",
       all_stage_names(added_steps),
       {},
       "saga stages this replica runs, comma separated (or a YAML list); empty: none"},
      {"app.http.api-enabled",
       "true",
       {},
       "serve /api/* and the API docs; false: only /actuator/* and /metrics"},
      {"app.kafka.replication-factor", "1", {}, "replication factor of created topics"},
      {"app.retry.max-attempts",
       "3",
       {},
       "retries of a transiently failing step before it is dead-lettered"},
      {"app.retry.backoff-delay",
       "1000",
       {},
       "ms before the first retry; doubles each retry (+-20%)"},
      {"app.payment.timeout", "5000", {}, "ms per payment gateway call"},
      {"app.payment.max-retries", "3", {}, "retries of one gateway call"},
      {"app.payment.gateway-url",
       "http://127.0.0.1:8090",
       {"PAYMENT_GATEWAY_URL"},
       "base URL of the REST payment gateway"},
      {"app.payment.circuit-breaker.failure-rate-threshold",
       "50",
       {},
       "percent of failed gateway calls in the window that opens the breaker"},
      {"app.payment.circuit-breaker.sliding-window-size",
       "20",
       {},
       "gateway calls the failure rate is computed over"},
      {"app.payment.circuit-breaker.minimum-number-of-calls",
       "10",
       {},
       "calls in the window before the failure rate counts"},
      {"app.payment.circuit-breaker.wait-duration-in-open-state",
       "10000",
       {},
       "ms the breaker stays open before trial calls"},
      {"app.payment.circuit-breaker.permitted-number-of-calls-in-half-open-state",
       "3",
       {},
       "trial calls while half-open; all must succeed to close"},
      {"app.saga.deadline.validation", "300000", {}, "ms an order may wait for validation"},
      {"app.saga.deadline.reservation", "300000", {}, "ms an order may wait for its reservation"},
      {"app.saga.deadline.payment", "120000", {}, "ms an order may wait for its payment"},
      {"app.saga.deadline.confirmation", "300000", {}, "ms an order may wait for confirmation"},
      {"app.saga.sweep-interval", "1000", {}, "ms between scans for sagas past their deadline"},
      {"app.saga.republish-after",
       "30000",
       {},
       "ms an order waits at a step before the event that starts it is sent again"},
      {"app.dlq.replay-rate", "50", {}, "messages per second a bulk DLQ replay re-injects at most"},
      {"app.retention.interval", "60000", {}, "ms between passes of the retention job"},
      {"app.retention.event-claims-hours",
       "48",
       {},
       "hours a stage's claim of an event id is kept; longer than any redelivery of it"},
      {"app.retention.idempotency-keys-hours",
       "24",
       {},
       "hours an Idempotency-Key answer is replayed to a retrying client"},
      {"app.retention.replayed-dead-letters-hours",
       "168",
       {},
       "hours a replayed dead letter stays listed before it is deleted"},
      {"app.retention.batch-size", "5000", {}, "rows the retention job deletes per transaction"},
      {"app.dashboard.interval", "1000", {}, "ms between the operator dashboard's snapshots"},
      {"app.dashboard.max-clients",
       "32",
       {"DASHBOARD_MAX_CLIENTS"},
       "open /dashboard/stream connections per replica; more are answered 503"},
      {"app.orders.max-quantity", "1000", {}, "largest quantity of one order item"},
      {"app.orders.max-items", "100", {}, "most items in one order"},
      {"app.admin.token", "", {"ADMIN_TOKEN"}, "bearer token of /api/admin/*; empty disables it"},
      {"app.health.interval", "1000", {}, "ms between database and Kafka health probes"},
  };
  for (const auto& step : added_steps) {
    keys.push_back({fmt::format("app.kafka.topics.{}.name", step.name),
                    step.default_topic,
                    {},
                    fmt::format("topic of the {} step's event (also accepted as "
                                "app.kafka.topics.{}: NAME)",
                                step.name, step.name)});
    keys.push_back({fmt::format("app.kafka.topics.{}.partitions", step.name),
                    "6",
                    {},
                    "partitions when the topic is created"});
    keys.push_back({fmt::format("app.saga.deadline.{}", step.name),
                    std::to_string(step.default_deadline.count()),
                    {},
                    fmt::format("ms an order may wait for the {} step", step.name)});
  }
  for (const auto& t : topic_defaults) {
    keys.push_back({fmt::format("app.kafka.topics.{}.name", t.key),
                    t.name,
                    {},
                    fmt::format("topic name (also accepted as app.kafka.topics.{}: NAME)", t.key)});
    keys.push_back({fmt::format("app.kafka.topics.{}.partitions", t.key),
                    std::to_string(t.partitions),
                    {},
                    "partitions when the topic is created"});
  }
  for (const auto& m : log_modules) {
    keys.push_back(
        {"logging.level." + m, m == "root" ? "info" : "",
         m == "root" ? std::vector<std::string>{"LOG_LEVEL"} : std::vector<std::string>{},
         "trace, debug, info, warn, error or off"});
  }
  return keys;
}

// Spring's relaxed binding: app.retry.max-attempts -> APP_RETRY_MAXATTEMPTS, and the
// friendlier APP_RETRY_MAX_ATTEMPTS.
std::vector<std::string> env_names(const key_spec& spec) {
  std::string underscored, spring;
  for (char c : spec.key) {
    char u = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (c == '.' || c == '-')
      underscored += '_';
    else
      underscored += u;
    if (c == '.')
      spring += '_';
    else if (c != '-')
      spring += u;
  }
  std::vector<std::string> names = spec.env_aliases;
  names.push_back(underscored);
  if (spring != underscored)
    names.push_back(spring);
  return names;
}

// A configuration has a hundred keys or so, nested five deep. Aliases (&a / *a) can make
// far more: nested a few levels deep they expand into millions of entries, and an alias
// inside its own anchor (&a {p: *a}) into a cycle. Both are refused rather than walked.
constexpr std::size_t max_entries = 10'000;
constexpr std::size_t max_depth = 32;

void flatten(const YAML::Node& node, const std::string& prefix,
             std::map<std::string, std::string>& out, std::size_t& entries, std::size_t depth = 0) {
  if (++entries > max_entries)
    throw config_error(fmt::format(
        "the configuration has more than {} entries (aliases expanding into each other?)",
        max_entries));
  if (depth > max_depth)
    throw config_error(fmt::format("{}: nested more than {} levels deep (an alias inside itself?)",
                                   prefix.substr(0, 200), max_depth));
  switch (node.Type()) {
    case YAML::NodeType::Map:
      for (const auto& entry : node) {
        auto key = entry.first.as<std::string>();
        flatten(entry.second, prefix.empty() ? key : prefix + "." + key, out, entries, depth + 1);
      }
      break;
    case YAML::NodeType::Sequence: {
      std::string joined;
      for (const auto& item : node) {
        if (!joined.empty())
          joined += ",";
        joined += item.as<std::string>();
      }
      out[prefix] = joined;
      break;
    }
    case YAML::NodeType::Scalar:
      out[prefix] = node.as<std::string>();
      break;
    default:
      break;
  }
}

class value_reader {
 public:
  explicit value_reader(std::map<std::string, std::string> values) : values_(std::move(values)) {}

  const std::string& text(const std::string& key) const { return values_.at(key); }

  long long integer(const std::string& key, long long min, long long max) const {
    const auto& v = text(key);
    long long out = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    if (ec != std::errc{} || end != v.data() + v.size())
      throw config_error(fmt::format("{}: '{}' is not an integer", key, v));
    if (out < min || out > max)
      throw config_error(fmt::format("{}: {} is outside {}..{}", key, out, min, max));
    return out;
  }

  milliseconds millis(const std::string& key, long long min, long long max) const {
    return milliseconds(integer(key, min, max));
  }

  bool boolean(const std::string& key) const {
    auto v = text(key);
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
    if (v == "true" || v == "yes" || v == "1" || v == "on")
      return true;
    if (v == "false" || v == "no" || v == "0" || v == "off")
      return false;
    throw config_error(fmt::format("{}: '{}' is not a boolean", key, text(key)));
  }

 private:
  std::map<std::string, std::string> values_;
};

std::string strip_jdbc(std::string url) {
  constexpr std::string_view prefix = "jdbc:";
  if (url.rfind(prefix, 0) == 0)
    url.erase(0, prefix.size());
  return url;
}

// Adds key=value to a libpq URI (as a query parameter) or key/value conninfo string.
std::string with_connection_parameter(std::string url, const std::string& key,
                                      const std::string& value) {
  if (value.empty())
    return url;
  if (url.find("://") == std::string::npos)
    return url + " " + key + "='" + value + "'";
  return url + (url.find('?') == std::string::npos ? "?" : "&") + key + "=" + value;
}

std::string check_level(const std::string& key, const std::string& level) {
  static const std::set<std::string> allowed = {"trace", "debug",    "info", "warn",
                                                "error", "critical", "off"};
  std::string lower = level;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (lower == "warning")
    lower = "warn";
  if (!allowed.count(lower))
    throw config_error(fmt::format("{}: '{}' is not a log level", key, level));
  return lower;
}

// "pay, validate" -> {"validate", "pay"} (pipeline order); "" -> none. A YAML list arrives
// here joined with commas.
std::vector<std::string> parse_stages(const std::string& key, const std::string& text,
                                      const std::vector<step_keys>& added_steps) {
  std::vector<std::string> stages(all_stages.begin(), all_stages.end());
  for (const auto& step : added_steps)
    stages.push_back(step.name);
  std::set<std::string_view> wanted;
  std::string_view rest = text;
  while (!rest.empty()) {
    auto comma = rest.find(',');
    auto item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front())))
      item.remove_prefix(1);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back())))
      item.remove_suffix(1);
    if (item.empty())
      continue;
    auto known = std::find(stages.begin(), stages.end(), item);
    if (known == stages.end())
      throw config_error(fmt::format("{}: unknown stage '{}' (allowed: {}; empty for none)", key,
                                     item, fmt::join(stages, ", ")));
    wanted.insert(*known);
  }
  std::vector<std::string> out;
  for (const auto& stage : stages)
    if (wanted.count(stage))
      out.push_back(stage);
  return out;
}

app_config build(const YAML::Node& root, const env_lookup& env,
                 const std::vector<step_keys>& added_steps) {
  const auto specs = build_key_table(added_steps);
  std::map<std::string, std::string> given;
  if (root && !root.IsNull()) {
    if (!root.IsMap())
      throw config_error("configuration root must be a mapping");
    std::size_t entries = 0;
    flatten(root, "", given, entries);
  }
  // A topic may be written as `order-placed: orders.placed` (the seed's shape) or as a
  // mapping with name and partitions (the shape its troubleshooting section shows).
  std::vector<std::string> topic_keys;
  for (const auto& t : topic_defaults)
    topic_keys.emplace_back(t.key);
  for (const auto& step : added_steps)
    topic_keys.push_back(step.name);
  for (const auto& topic_key : topic_keys) {
    auto short_key = fmt::format("app.kafka.topics.{}", topic_key);
    if (auto it = given.find(short_key); it != given.end()) {
      given[short_key + ".name"] = it->second;
      given.erase(it);
    }
  }

  std::map<std::string, std::string> values;
  std::set<std::string> known;
  for (const auto& spec : specs) {
    known.insert(spec.key);
    values[spec.key] = spec.default_value;
  }
  for (const auto& [key, value] : given) {
    if (!known.count(key))
      throw config_error(fmt::format("unknown configuration key '{}'", key));
    values[key] = value;
  }
  for (const auto& spec : specs) {
    for (const auto& name : env_names(spec)) {
      if (auto v = env(name)) {
        values[spec.key] = *v;
        break;
      }
    }
  }

  value_reader r(std::move(values));
  app_config c;
  c.http.address = r.text("server.address");
  c.http.port = static_cast<std::uint16_t>(r.integer("server.port", 0, 65535));
  c.http.threads = static_cast<int>(r.integer("server.threads", 0, 256));
  c.http.body_limit_bytes =
      static_cast<std::size_t>(r.integer("server.max-body-bytes", 1024, 64 * 1024 * 1024));
  c.http.read_timeout = r.millis("server.read-timeout", 100, 3'600'000);
  c.http.header_limit_bytes =
      static_cast<std::size_t>(r.integer("server.max-header-bytes", 1024, 1024 * 1024));
  c.http.max_connections =
      static_cast<std::size_t>(r.integer("server.max-connections", 1, 1'000'000));
  c.http.api_enabled = r.boolean("app.http.api-enabled");
  c.stages.enabled = parse_stages("app.stages.enabled", r.text("app.stages.enabled"), added_steps);
  c.http.max_waiting_requests =
      static_cast<std::size_t>(r.integer("server.max-waiting-requests", 0, 1'000'000));
  c.http.max_pending_orders =
      static_cast<std::size_t>(r.integer("server.max-pending-orders", 0, 1'000'000));
  c.runtime.shutdown_timeout = r.millis("server.shutdown-timeout", 0, 600'000);
  c.runtime.health_interval = r.millis("app.health.interval", 100, 60'000);

  c.kafka.bootstrap_servers = r.text("spring.kafka.bootstrap-servers");
  if (c.kafka.bootstrap_servers.empty())
    throw config_error("spring.kafka.bootstrap-servers: must not be empty");
  c.kafka.group_id = r.text("spring.kafka.consumer.group-id");
  if (c.kafka.group_id.empty())
    throw config_error("spring.kafka.consumer.group-id: must not be empty");
  c.kafka.create_topics = r.boolean("app.kafka.create-topics");
  c.kafka.replication_factor = static_cast<int>(r.integer("app.kafka.replication-factor", 1, 16));
  auto topic = [&](const std::string& key) {
    topic_config t;
    t.name = r.text(fmt::format("app.kafka.topics.{}.name", key));
    if (t.name.empty())
      throw config_error(fmt::format("app.kafka.topics.{}: name is empty", key));
    t.partitions =
        static_cast<int>(r.integer(fmt::format("app.kafka.topics.{}.partitions", key), 1, 1024));
    return t;
  };
  c.kafka.order_placed = topic("order-placed");
  c.kafka.order_validated = topic("order-validated");
  c.kafka.inventory_reserved = topic("inventory-reserved");
  c.kafka.payment_processed = topic("payment-processed");
  c.kafka.order_confirmed = topic("order-confirmed");
  c.kafka.order_failed = topic("order-failed");
  c.kafka.dlq_orders = topic("dlq-orders");
  for (const auto& step : added_steps) {
    c.kafka.step_topics[step.name] = topic(step.name);
    c.saga.step_deadlines[step.name] =
        r.millis(fmt::format("app.saga.deadline.{}", step.name), 100, 86'400'000);
  }

  c.database.url = strip_jdbc(r.text("spring.datasource.url"));
  if (c.database.url.empty())
    throw config_error("spring.datasource.url: must not be empty");
  c.database.url =
      with_connection_parameter(c.database.url, "user", r.text("spring.datasource.username"));
  c.database.url =
      with_connection_parameter(c.database.url, "password", r.text("spring.datasource.password"));
  c.database.pool_size = static_cast<int>(r.integer("spring.datasource.pool-size", 1, 500));
  c.database.connect_timeout = r.millis("spring.datasource.connect-timeout", 100, 600'000);

  c.retry.max_attempts = static_cast<int>(r.integer("app.retry.max-attempts", 1, 100));
  c.retry.backoff_delay = r.millis("app.retry.backoff-delay", 0, 3'600'000);
  c.payment.timeout = r.millis("app.payment.timeout", 10, 600'000);
  c.payment.max_retries = static_cast<int>(r.integer("app.payment.max-retries", 0, 100));
  c.payment.gateway_url = r.text("app.payment.gateway-url");
  auto& breaker = c.payment.circuit_breaker;
  breaker.failure_rate_threshold =
      static_cast<int>(r.integer("app.payment.circuit-breaker.failure-rate-threshold", 1, 100));
  breaker.sliding_window_size =
      static_cast<int>(r.integer("app.payment.circuit-breaker.sliding-window-size", 1, 10'000));
  breaker.minimum_calls =
      static_cast<int>(r.integer("app.payment.circuit-breaker.minimum-number-of-calls", 1, 10'000));
  breaker.open_duration =
      r.millis("app.payment.circuit-breaker.wait-duration-in-open-state", 1, 3'600'000);
  breaker.half_open_calls = static_cast<int>(r.integer(
      "app.payment.circuit-breaker.permitted-number-of-calls-in-half-open-state", 1, 1000));
  c.saga.validation_deadline = r.millis("app.saga.deadline.validation", 100, 86'400'000);
  c.saga.reservation_deadline = r.millis("app.saga.deadline.reservation", 100, 86'400'000);
  c.saga.payment_deadline = r.millis("app.saga.deadline.payment", 100, 86'400'000);
  c.saga.confirmation_deadline = r.millis("app.saga.deadline.confirmation", 100, 86'400'000);
  c.saga.sweep_interval = r.millis("app.saga.sweep-interval", 10, 600'000);
  c.saga.republish_after = r.millis("app.saga.republish-after", 1000, 86'400'000);
  c.dlq.replay_rate = static_cast<int>(r.integer("app.dlq.replay-rate", 1, 100'000));
  c.retention.interval = r.millis("app.retention.interval", 1000, 86'400'000);
  c.retention.event_claims =
      std::chrono::hours(r.integer("app.retention.event-claims-hours", 1, 87'600));
  c.retention.idempotency_keys =
      std::chrono::hours(r.integer("app.retention.idempotency-keys-hours", 1, 87'600));
  c.retention.replayed_dead_letters =
      std::chrono::hours(r.integer("app.retention.replayed-dead-letters-hours", 1, 87'600));
  c.retention.batch_size = static_cast<int>(r.integer("app.retention.batch-size", 100, 1'000'000));
  c.dashboard.interval = r.millis("app.dashboard.interval", 100, 60'000);
  c.dashboard.max_clients = static_cast<int>(r.integer("app.dashboard.max-clients", 0, 10'000));
  c.orders.max_quantity = static_cast<int>(r.integer("app.orders.max-quantity", 1, 1'000'000));
  c.orders.max_items = static_cast<int>(r.integer("app.orders.max-items", 1, 10'000));
  c.admin.token = r.text("app.admin.token");

  c.logging.root_level = check_level("logging.level.root", r.text("logging.level.root"));
  for (const auto& m : log_modules) {
    if (m == "root")
      continue;
    auto key = "logging.level." + m;
    if (!r.text(key).empty())
      c.logging.levels[m] = check_level(key, r.text(key));
  }
  return c;
}

}  // namespace

env_lookup process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    if (const char* v = std::getenv(name.c_str()))
      return std::string(v);
    return std::nullopt;
  };
}

namespace {
// Both entry points: a YAML error, while parsing or while reading the parsed nodes (a key
// that is not a scalar, say), is a config_error like any other.
app_config load_text(const std::string& yaml_text, const env_lookup& env, const std::string& origin,
                     const std::vector<step_keys>& added_steps) {
  try {
    return build(YAML::Load(yaml_text), env, added_steps);
  } catch (const YAML::Exception& e) {
    throw config_error(origin + e.what());
  }
}
}  // namespace

app_config load(const std::optional<std::string>& yaml_path, const env_lookup& env,
                const std::vector<step_keys>& added_steps) {
  if (!yaml_path)
    return build(YAML::Node(), env, added_steps);
  std::ifstream in(*yaml_path, std::ios::binary);
  if (!in.is_open())
    throw config_error(fmt::format("cannot read configuration file '{}'", *yaml_path));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return load_text(text, env, *yaml_path + ": ", added_steps);
}

app_config load_from_string(const std::string& yaml_text, const env_lookup& env,
                            const std::vector<step_keys>& added_steps) {
  return load_text(yaml_text, env, "", added_steps);
}

std::string describe_keys(const std::vector<step_keys>& added_steps) {
  std::string out;
  for (const auto& spec : build_key_table(added_steps)) {
    auto envs = env_names(spec);
    out += fmt::format("{:<44} {:<28} {}\n    {}\n", spec.key,
                       spec.default_value.empty() ? "(unset)" : spec.default_value,
                       fmt::join(envs, " "), spec.description);
  }
  return out;
}

}  // namespace op::config
