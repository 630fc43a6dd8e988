#include <librdkafka/rdkafkacpp.h>

#include <catch2/catch.hpp>
#include <map>
#include <memory>

#include "platform/kafka/kafka_admin.hpp"
#include "platform/kafka/producer.hpp"
#include "support/test_environment.hpp"

using namespace op;
using namespace std::chrono_literals;

namespace {
std::unique_ptr<RdKafka::Conf> conf_with(std::map<std::string, std::string> entries) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  for (const auto& [k, v] : entries)
    REQUIRE(conf->set(k, v, err) == RdKafka::Conf::CONF_OK);
  return conf;
}
}  // namespace

TEST_CASE("topics are created with their partition counts and a produced message is consumed back",
          "[kafka]") {
  kafka::kafka_admin admin(test::kafka_brokers());
  auto topic = test::unique_name("roundtrip");
  auto created = admin.ensure_topics({{topic, 4, 1}}, 10s);
  CHECK(created == std::vector<std::string>{topic});
  // A second call is harmless and creates nothing.
  CHECK(admin.ensure_topics({{topic, 4, 1}}, 10s).empty());
  auto described = admin.describe(topic, 5s);
  REQUIRE(described.has_value());
  CHECK(described->partitions == 4);

  std::string err;
  auto pconf =
      conf_with({{"bootstrap.servers", test::kafka_brokers()}, {"enable.idempotence", "true"}});
  std::unique_ptr<RdKafka::Producer> producer(RdKafka::Producer::create(pconf.get(), err));
  REQUIRE(producer);
  std::string payload = R"({"hello":"kafka"})";
  std::string key = "order-1";
  REQUIRE(producer->produce(topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
                            payload.data(), payload.size(), key.data(), key.size(), 0,
                            nullptr) == RdKafka::ERR_NO_ERROR);
  REQUIRE(producer->flush(10000) == RdKafka::ERR_NO_ERROR);

  auto cconf = conf_with({{"bootstrap.servers", test::kafka_brokers()},
                          {"group.id", test::unique_name("roundtrip-group")},
                          {"auto.offset.reset", "earliest"}});
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(
      RdKafka::KafkaConsumer::create(cconf.get(), err));
  REQUIRE(consumer);
  REQUIRE(consumer->subscribe({topic}) == RdKafka::ERR_NO_ERROR);
  std::string received, received_key;
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (received.empty() && std::chrono::steady_clock::now() < deadline) {
    std::unique_ptr<RdKafka::Message> msg(consumer->consume(500));
    if (msg->err() == RdKafka::ERR_NO_ERROR) {
      received.assign(static_cast<const char*>(msg->payload()), msg->len());
      received_key = *msg->key();
    }
  }
  consumer->close();
  CHECK(received == payload);
  CHECK(received_key == key);
}

TEST_CASE("the probe reports an unreachable broker with a reason", "[kafka]") {
  kafka::kafka_admin admin("127.0.0.1:" + std::to_string(test::free_port()));
  auto failure = admin.probe(1s);
  REQUIRE(failure.has_value());
  CHECK_FALSE(failure->empty());
}

TEST_CASE("the producer looks up the topics it will write before their first message", "[kafka]") {
  kafka::kafka_admin admin(test::kafka_brokers());
  auto existing = test::unique_name("prepared");
  REQUIRE(admin.ensure_topics({{existing, 3, 1}}, 10s) == std::vector<std::string>{existing});
  auto missing = test::unique_name("never-created");  // auto-creation is off on the test broker

  kafka::producer producer(test::kafka_brokers(), 10s);
  CHECK(producer.prepare_topics({existing, missing}, 5s) == std::vector<std::string>{missing});

  // A prepared topic takes messages like any other.
  auto delivered = producer.send_batch({{existing, "order-1", R"({"prepared":true})", {}}});
  CHECK(delivered == std::vector<bool>{true});
}
