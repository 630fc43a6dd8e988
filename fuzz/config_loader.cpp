// Fuzz target: the YAML configuration loader (config::load_from_string, the text entry point
// config::load shares) on arbitrary YAML text, with no environment overrides.
//
// Properties, beyond not crashing:
// - the loader either returns a configuration or throws config_error with a message; nothing
//   else escapes (the server reports a config_error by name and exits 78, anything else
//   would abort it);
// - loading is deterministic;
// - an accepted configuration keeps every documented range (ports, pool sizes, timeouts,
//   partitions, non-empty names, log levels from the known set);
// - an accepted configuration, written out as YAML with every key, loads to the same
//   configuration.

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "platform/config/app_config.hpp"

using namespace op;
using namespace op::config;

namespace {

const env_lookup no_environment = [](const std::string&) -> std::optional<std::string> {
  return std::nullopt;
};

struct loaded {
  std::optional<app_config> config;
  std::string error;
};

loaded load(const std::string& text) {
  try {
    return {load_from_string(text, no_environment), {}};
  } catch (const config_error& e) {
    return {std::nullopt, e.what()};
  }
}

bool same(const topic_config& a, const topic_config& b) {
  return a.name == b.name && a.partitions == b.partitions;
}

bool same(const app_config& a, const app_config& b) {
  const auto ta = a.kafka.all_topics(), tb = b.kafka.all_topics();
  for (std::size_t i = 0; i < ta.size(); ++i)
    if (!same(ta[i], tb[i]))
      return false;
  const auto &pa = a.payment, &pb = b.payment;
  const auto &ca = pa.circuit_breaker, &cb = pb.circuit_breaker;
  return a.http.address == b.http.address && a.http.port == b.http.port &&
         a.http.body_limit_bytes == b.http.body_limit_bytes &&
         a.http.read_timeout == b.http.read_timeout && a.http.threads == b.http.threads &&
         a.http.api_enabled == b.http.api_enabled && a.stages.enabled == b.stages.enabled &&
         a.kafka.bootstrap_servers == b.kafka.bootstrap_servers &&
         a.kafka.group_id == b.kafka.group_id && a.kafka.create_topics == b.kafka.create_topics &&
         a.kafka.replication_factor == b.kafka.replication_factor &&
         a.database.url == b.database.url && a.database.pool_size == b.database.pool_size &&
         a.database.connect_timeout == b.database.connect_timeout &&
         a.retry.max_attempts == b.retry.max_attempts &&
         a.retry.backoff_delay == b.retry.backoff_delay && pa.timeout == pb.timeout &&
         pa.max_retries == pb.max_retries && pa.gateway_url == pb.gateway_url &&
         ca.failure_rate_threshold == cb.failure_rate_threshold &&
         ca.sliding_window_size == cb.sliding_window_size && ca.minimum_calls == cb.minimum_calls &&
         ca.open_duration == cb.open_duration && ca.half_open_calls == cb.half_open_calls &&
         a.saga.validation_deadline == b.saga.validation_deadline &&
         a.saga.reservation_deadline == b.saga.reservation_deadline &&
         a.saga.payment_deadline == b.saga.payment_deadline &&
         a.saga.confirmation_deadline == b.saga.confirmation_deadline &&
         a.saga.sweep_interval == b.saga.sweep_interval && a.dlq.replay_rate == b.dlq.replay_rate &&
         a.orders.max_quantity == b.orders.max_quantity &&
         a.orders.max_items == b.orders.max_items && a.admin.token == b.admin.token &&
         a.logging.root_level == b.logging.root_level && a.logging.levels == b.logging.levels &&
         a.runtime.shutdown_timeout == b.runtime.shutdown_timeout &&
         a.runtime.health_interval == b.runtime.health_interval;
}

template <class T>
bool within(T value, long long min, long long max) {
  return static_cast<long long>(value) >= min && static_cast<long long>(value) <= max;
}

void check_ranges(const app_config& c) {
  static const std::set<std::string> levels = {"trace", "debug",    "info", "warn",
                                               "error", "critical", "off"};
  static const std::set<std::string> modules = {"http",      "kafka",    "db",     "orders", "saga",
                                                "inventory", "payments", "outbox", "health", "app"};
  FUZZ_CHECK(within(c.http.threads, 0, 256), "server.threads");
  FUZZ_CHECK(within(c.http.body_limit_bytes, 1024, 64 * 1024 * 1024), "server.max-body-bytes");
  FUZZ_CHECK(within(c.http.read_timeout.count(), 100, 3'600'000), "server.read-timeout");
  FUZZ_CHECK(!c.kafka.bootstrap_servers.empty() && !c.kafka.group_id.empty(), "kafka");
  // Known stage names only, each once, in pipeline order.
  auto next_stage = all_stages.begin();
  for (const auto& stage : c.stages.enabled) {
    next_stage = std::find(next_stage, all_stages.end(), stage);
    FUZZ_CHECK(next_stage != all_stages.end(), "app.stages.enabled: " + stage);
    ++next_stage;
  }
  FUZZ_CHECK(within(c.kafka.replication_factor, 1, 16), "replication factor");
  for (const auto& t : c.kafka.all_topics())
    FUZZ_CHECK(!t.name.empty() && within(t.partitions, 1, 1024), "topic " + t.name);
  FUZZ_CHECK(!c.database.url.empty() && within(c.database.pool_size, 1, 500), "datasource");
  FUZZ_CHECK(within(c.retry.max_attempts, 1, 100), "app.retry.max-attempts");
  FUZZ_CHECK(within(c.payment.timeout.count(), 10, 600'000), "app.payment.timeout");
  FUZZ_CHECK(within(c.payment.circuit_breaker.failure_rate_threshold, 1, 100), "breaker");
  FUZZ_CHECK(within(c.saga.sweep_interval.count(), 10, 600'000), "sweep interval");
  FUZZ_CHECK(within(c.dlq.replay_rate, 1, 100'000), "replay rate");
  FUZZ_CHECK(within(c.orders.max_quantity, 1, 1'000'000) && within(c.orders.max_items, 1, 10'000),
             "orders");
  FUZZ_CHECK(levels.count(c.logging.root_level), c.logging.root_level);
  for (const auto& [module, level] : c.logging.levels)
    FUZZ_CHECK(modules.count(module) && levels.count(level), module + ": " + level);
}

bool all_utf8(const app_config& c) {
  std::vector<std::string_view> texts = {c.http.address,        c.kafka.bootstrap_servers,
                                         c.kafka.group_id,      c.database.url,
                                         c.payment.gateway_url, c.admin.token};
  const auto topics = c.kafka.all_topics();
  for (const auto& t : topics)
    texts.push_back(t.name);
  for (auto t : texts)
    if (!fuzz::is_utf8(t))
      return false;
  return true;
}

// Every key of `c` as YAML, strings double-quoted with every non-ASCII character escaped.
std::string to_yaml(const app_config& c) {
  YAML::Emitter out;
  out.SetOutputCharset(YAML::EscapeNonAscii);
  out.SetStringFormat(YAML::DoubleQuoted);
  out << YAML::BeginMap;
  auto key = [&](const std::string& k, const auto& v) {
    out << YAML::Key << k << YAML::Value << v;
  };
  auto text = [&](const std::string& k, const std::string& v) { key(k, v); };
  auto num = [&](const std::string& k, long long v) { key(k, std::to_string(v)); };
  text("server.address", c.http.address);
  num("server.port", c.http.port);
  num("server.threads", c.http.threads);
  num("server.max-body-bytes", static_cast<long long>(c.http.body_limit_bytes));
  num("server.read-timeout", c.http.read_timeout.count());
  num("server.shutdown-timeout", c.runtime.shutdown_timeout.count());
  text("app.http.api-enabled", c.http.api_enabled ? "true" : "false");
  std::string stages;
  for (const auto& stage : c.stages.enabled)
    stages += (stages.empty() ? "" : ",") + stage;
  text("app.stages.enabled", stages);
  num("app.health.interval", c.runtime.health_interval.count());
  text("spring.kafka.bootstrap-servers", c.kafka.bootstrap_servers);
  text("spring.kafka.consumer.group-id", c.kafka.group_id);
  text("app.kafka.create-topics", c.kafka.create_topics ? "true" : "false");
  num("app.kafka.replication-factor", c.kafka.replication_factor);
  const std::pair<const char*, const topic_config*> topics[] = {
      {"order-placed", &c.kafka.order_placed},
      {"order-validated", &c.kafka.order_validated},
      {"inventory-reserved", &c.kafka.inventory_reserved},
      {"payment-processed", &c.kafka.payment_processed},
      {"order-confirmed", &c.kafka.order_confirmed},
      {"order-failed", &c.kafka.order_failed},
      {"dlq-orders", &c.kafka.dlq_orders}};
  for (const auto& [name, t] : topics) {
    text(std::string("app.kafka.topics.") + name + ".name", t->name);
    num(std::string("app.kafka.topics.") + name + ".partitions", t->partitions);
  }
  // The loader strips one "jdbc:" prefix; a URL that still starts with one needs another.
  text("spring.datasource.url",
       (c.database.url.rfind("jdbc:", 0) == 0 ? "jdbc:" : "") + c.database.url);
  num("spring.datasource.pool-size", c.database.pool_size);
  num("spring.datasource.connect-timeout", c.database.connect_timeout.count());
  num("app.retry.max-attempts", c.retry.max_attempts);
  num("app.retry.backoff-delay", c.retry.backoff_delay.count());
  num("app.payment.timeout", c.payment.timeout.count());
  num("app.payment.max-retries", c.payment.max_retries);
  text("app.payment.gateway-url", c.payment.gateway_url);
  const auto& b = c.payment.circuit_breaker;
  num("app.payment.circuit-breaker.failure-rate-threshold", b.failure_rate_threshold);
  num("app.payment.circuit-breaker.sliding-window-size", b.sliding_window_size);
  num("app.payment.circuit-breaker.minimum-number-of-calls", b.minimum_calls);
  num("app.payment.circuit-breaker.wait-duration-in-open-state", b.open_duration.count());
  num("app.payment.circuit-breaker.permitted-number-of-calls-in-half-open-state",
      b.half_open_calls);
  num("app.saga.deadline.validation", c.saga.validation_deadline.count());
  num("app.saga.deadline.reservation", c.saga.reservation_deadline.count());
  num("app.saga.deadline.payment", c.saga.payment_deadline.count());
  num("app.saga.deadline.confirmation", c.saga.confirmation_deadline.count());
  num("app.saga.sweep-interval", c.saga.sweep_interval.count());
  num("app.dlq.replay-rate", c.dlq.replay_rate);
  num("app.orders.max-quantity", c.orders.max_quantity);
  num("app.orders.max-items", c.orders.max_items);
  text("app.admin.token", c.admin.token);
  text("logging.level.root", c.logging.root_level);
  for (const auto& [module, level] : c.logging.levels)
    text("logging.level." + module, level);
  out << YAML::EndMap;
  return out.c_str();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto first = load(text);
  auto second = load(text);
  FUZZ_CHECK(first.config.has_value() == second.config.has_value() && first.error == second.error,
             "two loads differ");
  if (!first.config) {
    FUZZ_CHECK(!first.error.empty(), "config_error without a message");
    return 0;
  }
  FUZZ_CHECK(same(*first.config, *second.config), "two loads differ");
  check_ranges(*first.config);

  if (!all_utf8(*first.config))
    return 0;  // YAML text is UTF-8; bytes that are not cannot be written back as YAML
  auto yaml = to_yaml(*first.config);
  auto reloaded = load(yaml);
  FUZZ_CHECK(reloaded.config, yaml + "\n  fails to load: " + reloaded.error);
  FUZZ_CHECK(same(*first.config, *reloaded.config), yaml);
  return 0;
}
