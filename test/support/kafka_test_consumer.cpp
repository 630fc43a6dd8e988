#include "support/kafka_test_consumer.hpp"

#include <librdkafka/rdkafkacpp.h>

#include <catch2/catch.hpp>

#include "support/test_environment.hpp"

namespace op::test {

kafka_test_consumer::kafka_test_consumer(const std::string& topic) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  conf->set("bootstrap.servers", kafka_brokers(), err);
  conf->set("group.id", unique_name("test-reader"), err);
  conf->set("auto.offset.reset", "earliest", err);
  conf->set("enable.auto.commit", "false", err);
  consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
  REQUIRE(consumer_);
  REQUIRE(consumer_->subscribe({topic}) == RdKafka::ERR_NO_ERROR);
}

kafka_test_consumer::~kafka_test_consumer() {
  if (consumer_)
    consumer_->close();
}

std::vector<consumed_message> kafka_test_consumer::wait_for_key(const std::string& key,
                                                                std::size_t count,
                                                                std::chrono::seconds timeout) {
  auto matching = [&] {
    std::vector<consumed_message> out;
    for (const auto& m : seen_)
      if (m.key == key)
        out.push_back(m);
    return out;
  };
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (matching().size() < count && std::chrono::steady_clock::now() < deadline) {
    std::unique_ptr<RdKafka::Message> msg(consumer_->consume(200));
    if (msg->err() != RdKafka::ERR_NO_ERROR)
      continue;
    consumed_message m;
    if (msg->key())
      m.key = *msg->key();
    m.value.assign(static_cast<const char*>(msg->payload()), msg->len());
    m.partition = msg->partition();
    m.offset = msg->offset();
    if (auto* headers = msg->headers())
      for (const auto& h : headers->get_all())
        m.headers[h.key()] = std::string(static_cast<const char*>(h.value()), h.value_size());
    seen_.push_back(std::move(m));
  }
  return matching();
}

}  // namespace op::test

namespace op::test {

void produce_message(const std::string& topic, const consumed_message& message,
                     std::optional<int> partition) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  conf->set("bootstrap.servers", kafka_brokers(), err);
  std::unique_ptr<RdKafka::Producer> producer(RdKafka::Producer::create(conf.get(), err));
  REQUIRE(producer);
  auto* headers = RdKafka::Headers::create();
  for (const auto& [k, v] : message.headers)
    headers->add(k, v);
  REQUIRE(producer->produce(topic, partition.value_or(RdKafka::Topic::PARTITION_UA),
                            RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(message.value.data()),
                            message.value.size(), message.key.data(), message.key.size(), 0,
                            headers, nullptr) == RdKafka::ERR_NO_ERROR);
  REQUIRE(producer->flush(10000) == RdKafka::ERR_NO_ERROR);
}

}  // namespace op::test
