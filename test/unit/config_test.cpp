#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>

#include "platform/config/app_config.hpp"

using namespace op::config;

namespace {
env_lookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end())
      return std::nullopt;
    return it->second;
  };
}
}  // namespace

TEST_CASE("the seed's application.yml keys are read", "[config]") {
  auto c = load_from_string(R"(
app:
  kafka:
    topics:
      order-placed: "orders.placed"
      dlq-orders: "dlq.orders"
  retry:
    max-attempts: 5
    backoff-delay: 250
  payment:
    timeout: 2000
    max-retries: 2
spring:
  kafka:
    bootstrap-servers: broker:9092
    consumer:
      group-id: my-group
)",
                            env_of({}));
  CHECK(c.kafka.order_placed.name == "orders.placed");
  CHECK(c.kafka.order_placed.partitions == 6);
  CHECK(c.retry.max_attempts == 5);
  CHECK(c.retry.backoff_delay.count() == 250);
  CHECK(c.payment.timeout.count() == 2000);
  CHECK(c.payment.max_retries == 2);
  CHECK(c.kafka.bootstrap_servers == "broker:9092");
  CHECK(c.kafka.group_id == "my-group");
}

TEST_CASE("a topic can carry its partition count", "[config]") {
  auto c = load_from_string(R"(
app:
  kafka:
    topics:
      order-placed:
        name: custom.placed
        partitions: 12
)",
                            env_of({}));
  CHECK(c.kafka.order_placed.name == "custom.placed");
  CHECK(c.kafka.order_placed.partitions == 12);
  CHECK(c.kafka.order_validated.name == "orders.validated");
}

TEST_CASE("environment variables override the file", "[config]") {
  auto c = load_from_string("server:\n  port: 9000\n",
                            env_of({{"KAFKA_BROKERS", "k1:9092,k2:9092"},
                                    {"DB_URL", "jdbc:postgresql://db:5432/orderdb"},
                                    {"HTTP_PORT", "8181"},
                                    {"APP_RETRY_MAX_ATTEMPTS", "7"},
                                    {"APP_PAYMENT_MAXRETRIES", "9"},
                                    {"ADMIN_TOKEN", "secret"},
                                    {"LOGGING_LEVEL_KAFKA", "DEBUG"}}));
  CHECK(c.kafka.bootstrap_servers == "k1:9092,k2:9092");
  CHECK(c.database.url == "postgresql://db:5432/orderdb");
  CHECK(c.http.port == 8181);
  CHECK(c.retry.max_attempts == 7);
  CHECK(c.payment.max_retries == 9);
  CHECK(c.admin.token == "secret");
  CHECK(c.logging.levels.at("kafka") == "debug");
}

TEST_CASE("database user and password are added to the URL", "[config]") {
  auto c = load_from_string(
      "",
      env_of({{"DB_URL", "postgresql://db/orderdb"}, {"DB_USER", "app"}, {"DB_PASSWORD", "pw"}}));
  CHECK(c.database.url == "postgresql://db/orderdb?user=app&password=pw");
}

TEST_CASE("bad configuration is refused with the key named", "[config]") {
  CHECK_THROWS_WITH(load_from_string("app:\n  retry:\n    max-attemps: 3\n", env_of({})),
                    Catch::Contains("unknown configuration key 'app.retry.max-attemps'"));
  CHECK_THROWS_WITH(load_from_string("server:\n  port: eighty\n", env_of({})),
                    Catch::Contains("server.port"));
  CHECK_THROWS_WITH(load_from_string("", env_of({{"HTTP_PORT", "70000"}})),
                    Catch::Contains("server.port: 70000 is outside"));
  CHECK_THROWS_WITH(load_from_string("app:\n  kafka:\n    create-topics: maybe\n", env_of({})),
                    Catch::Contains("not a boolean"));
  CHECK_THROWS_WITH(load_from_string("logging:\n  level:\n    root: loud\n", env_of({})),
                    Catch::Contains("not a log level"));
  CHECK_THROWS_AS(load_from_string("- a\n- b\n", env_of({})), config_error);
}

TEST_CASE("a replica runs every stage and the API unless told otherwise", "[config][stages]") {
  auto c = load_from_string("", env_of({}));
  CHECK(c.stages.enabled == std::vector<std::string>{"validate", "reserve", "pay", "confirm"});
  CHECK(c.http.api_enabled);
}

TEST_CASE("app.stages.enabled picks the stages a replica runs", "[config][stages]") {
  SECTION("a comma-separated list, in any order, is kept in pipeline order") {
    auto c = load_from_string("app:\n  stages:\n    enabled: confirm, pay\n", env_of({}));
    CHECK(c.stages.enabled == std::vector<std::string>{"pay", "confirm"});
    CHECK(c.stages.runs("pay"));
    CHECK_FALSE(c.stages.runs("validate"));
  }
  SECTION("a YAML list") {
    auto c = load_from_string("app:\n  stages:\n    enabled: [reserve, validate]\n", env_of({}));
    CHECK(c.stages.enabled == std::vector<std::string>{"validate", "reserve"});
  }
  SECTION("APP_STAGES_ENABLED overrides the file") {
    auto c = load_from_string("app:\n  stages:\n    enabled: validate\n",
                              env_of({{"APP_STAGES_ENABLED", "pay,confirm"}}));
    CHECK(c.stages.enabled == std::vector<std::string>{"pay", "confirm"});
  }
  SECTION("an empty value, or an empty YAML list, runs no stage") {
    CHECK(load_from_string("", env_of({{"APP_STAGES_ENABLED", ""}})).stages.enabled.empty());
    CHECK(
        load_from_string("app:\n  stages:\n    enabled: []\n", env_of({})).stages.enabled.empty());
    CHECK(load_from_string("app:\n  stages:\n    enabled: \"\"\n", env_of({}))
              .stages.enabled.empty());
  }
  SECTION("an unknown stage stops the start, naming the key and the allowed values") {
    CHECK_THROWS_WITH(
        load_from_string("", env_of({{"APP_STAGES_ENABLED", "validate,payment"}})),
        "app.stages.enabled: unknown stage 'payment' (allowed: validate, reserve, pay, confirm; "
        "empty for none)");
    CHECK_THROWS_WITH(load_from_string("app:\n  stages:\n    enabled: [Pay]\n", env_of({})),
                      Catch::Contains("app.stages.enabled: unknown stage 'Pay'"));
  }
}

TEST_CASE("app.http.api-enabled switches the public API off", "[config][stages]") {
  CHECK_FALSE(
      load_from_string("app:\n  http:\n    api-enabled: false\n", env_of({})).http.api_enabled);
  CHECK_FALSE(load_from_string("", env_of({{"APP_HTTP_API_ENABLED", "false"}})).http.api_enabled);
  // Spring's relaxed form of the same key.
  CHECK_FALSE(load_from_string("", env_of({{"APP_HTTP_APIENABLED", "no"}})).http.api_enabled);
  CHECK_THROWS_WITH(load_from_string("", env_of({{"APP_HTTP_API_ENABLED", "sometimes"}})),
                    "app.http.api-enabled: 'sometimes' is not a boolean");
}

TEST_CASE("the key list of --help-config names the stage and API switches", "[config][stages]") {
  auto keys = describe_keys();
  CHECK_THAT(keys, Catch::Contains("app.stages.enabled") && Catch::Contains("APP_STAGES_ENABLED") &&
                       Catch::Contains("app.http.api-enabled") &&
                       Catch::Contains("APP_HTTP_API_ENABLED"));
}

// Found while giving the fuzz target (fuzz/config_loader) the loader's text entry point: a
// file whose YAML parses but cannot be read as keys and values (a key that is a sequence)
// threw a YAML exception past config::load, which main() does not catch: the server aborted
// instead of naming the problem and exiting 78.
TEST_CASE("a configuration file yaml-cpp cannot convert is a config_error", "[config]") {
  auto path = std::filesystem::temp_directory_path() /
              ("op-config-test-" + std::to_string(::getpid()) + ".yml");
  {
    std::ofstream out(path);
    out << "? [a, b]\n: 1\n";
  }
  CHECK_THROWS_AS(load(path.string(), env_of({})), config_error);
  CHECK_THROWS_AS(load_from_string("? [a, b]\n: 1\n", env_of({})), config_error);
  CHECK_THROWS_WITH(load("/nonexistent/op.yml", env_of({})),
                    Catch::Contains("cannot read configuration file"));
  std::filesystem::remove(path);
}

// Found with a crafted input for fuzz/config_loader (a libFuzzer timeout;
// fuzz/corpus/config_loader/alias-expansion.yml): 22 lines of nested aliases expanded into
// 2^22 keys before any was checked, 4 s and 1.4 GB in a release build, each further line
// doubling both.
TEST_CASE("aliases that expand into millions of entries are refused at once", "[config]") {
  std::string yaml = "a0: &a0 {x: 1, y: 1}\n";
  for (int i = 1; i <= 24; ++i)
    yaml += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " {p: *a" +
            std::to_string(i - 1) + ", q: *a" + std::to_string(i - 1) + "}\n";
  CHECK_THROWS_WITH(load_from_string(yaml, env_of({})), Catch::Contains("more than 10000 entries"));
  // Aliases as YAML means them still work.
  auto c = load_from_string("server:\n  port: &p 7000\n  read-timeout: *p\n", env_of({}));
  CHECK(c.http.port == 7000);
  CHECK(c.http.read_timeout == std::chrono::milliseconds(7000));
}

// Found by fuzz/config_loader (a stack overflow, from the input above mutated): an alias
// inside its own anchor makes a cycle, which the loader followed until the stack ran out.
TEST_CASE("an alias inside its own anchor is refused, not followed for ever", "[config]") {
  CHECK_THROWS_WITH(load_from_string("server: &s {port: *s}\n", env_of({})),
                    Catch::Contains("nested more than 32 levels"));
}

TEST_CASE("a step a program adds brings its topic and deadline keys and is a stage", "[config]") {
  const std::vector<step_keys> screen = {{"screen", "orders.screened", milliseconds(60000)}};
  auto defaults = load_from_string("", env_of({}), screen);
  CHECK(defaults.kafka.step_topics.at("screen").name == "orders.screened");
  CHECK(defaults.kafka.step_topics.at("screen").partitions == 6);
  CHECK(defaults.saga.step_deadlines.at("screen") == milliseconds(60000));
  CHECK(defaults.stages.runs("screen"));
  CHECK(defaults.stages.runs("pay"));
  bool topic_listed = false;
  for (const auto& t : defaults.kafka.all_topics())
    topic_listed = topic_listed || t.name == "orders.screened";
  CHECK(topic_listed);

  auto set = load_from_string(
      "app:\n  kafka:\n    topics:\n      screen: shop.screened\n  saga:\n    deadline:\n"
      "      screen: 5000\n  stages:\n    enabled: screen, pay\n",
      env_of({}), screen);
  CHECK(set.kafka.step_topics.at("screen").name == "shop.screened");
  CHECK(set.saga.step_deadlines.at("screen") == milliseconds(5000));
  CHECK(set.stages.enabled == std::vector<std::string>{"pay", "screen"});

  // Without the program that declares the step, its keys are unknown, as any typo is.
  CHECK_THROWS_WITH(
      load_from_string("app:\n  saga:\n    deadline:\n      screen: 5000\n", env_of({})),
      Catch::Contains("app.saga.deadline.screen"));
  CHECK_THROWS_WITH(load_from_string("app:\n  stages:\n    enabled: screen\n", env_of({})),
                    Catch::Contains("unknown stage 'screen'"));
}
