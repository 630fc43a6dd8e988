#include "platform/kafka/broadcast_consumer.hpp"

#include <fmt/format.h>
#include <librdkafka/rdkafkacpp.h>
#include <unistd.h>

#include <chrono>
#include <random>

#include "platform/kafka/kafka_admin.hpp"
#include "platform/log/logging.hpp"

namespace op::kafka {

broadcast_consumer::broadcast_consumer(std::string bootstrap_servers,
                                       std::vector<std::string> topics, callback on_message)
    : bootstrap_servers_(std::move(bootstrap_servers)),
      topics_(std::move(topics)),
      on_message_(std::move(on_message)) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  auto set = [&](const std::string& key, const std::string& value) {
    if (conf->set(key, value, err) != RdKafka::Conf::CONF_OK)
      throw kafka_error(fmt::format("broadcast consumer {}={}: {}", key, value, err));
  };
  set("bootstrap.servers", bootstrap_servers_);
  // librdkafka's consumer wants a group id, but assign() never joins the group and nothing
  // is committed: a name of its own per process keeps it apart from every real group.
  set("group.id",
      fmt::format("order-pipeline-broadcast-{}-{:x}", ::getpid(), std::random_device{}()));
  set("client.id", "order-pipeline-broadcast");
  set("enable.auto.commit", "false");
  set("enable.auto.offset.store", "false");
  // The broker answers a waiting fetch as soon as a message is appended, so a long wait costs
  // no latency; it only spares the broker a fetch every few milliseconds when nothing happens.
  set("fetch.wait.max.ms", "500");
  consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!consumer_)
    throw kafka_error("cannot create broadcast consumer: " + err);
}

broadcast_consumer::~broadcast_consumer() {
  stop();
}

void broadcast_consumer::start() {
  poller_ = std::thread([this] { poll_loop(); });
}

void broadcast_consumer::stop() {
  stopping_ = true;
  if (poller_.joinable())
    poller_.join();
  if (consumer_) {
    consumer_->close();
    consumer_.reset();
  }
}

bool broadcast_consumer::assign_all() {
  std::vector<RdKafka::TopicPartition*> partitions;
  for (const auto& name : topics_) {
    std::string err;
    std::unique_ptr<RdKafka::Topic> topic(
        RdKafka::Topic::create(consumer_.get(), name, nullptr, err));
    if (!topic)
      throw kafka_error(fmt::format("topic {}: {}", name, err));
    RdKafka::Metadata* raw = nullptr;
    if (consumer_->metadata(false, topic.get(), &raw, 5000) != RdKafka::ERR_NO_ERROR)
      break;
    std::unique_ptr<RdKafka::Metadata> metadata(raw);
    for (const auto* t : *metadata->topics())
      if (t->err() == RdKafka::ERR_NO_ERROR)
        for (const auto* p : *t->partitions())
          partitions.push_back(
              RdKafka::TopicPartition::create(name, p->id(), RdKafka::Topic::OFFSET_END));
  }
  std::size_t expected_topics = 0;
  for (const auto& name : topics_)
    for (const auto* p : partitions)
      if (p->topic() == name) {
        ++expected_topics;
        break;
      }
  bool complete = expected_topics == topics_.size();
  if (complete && consumer_->assign(partitions) != RdKafka::ERR_NO_ERROR)
    complete = false;
  if (complete)
    log::get("kafka")->info("reading {} partitions of {} from their end", partitions.size(),
                            fmt::join(topics_, ", "));
  RdKafka::TopicPartition::destroy(partitions);
  return complete;
}

void broadcast_consumer::poll_loop() {
  auto logger = log::get("kafka");
  while (!stopping_ && !assigned_) {
    try {
      assigned_ = assign_all();
    } catch (const std::exception& e) {
      logger->warn("broadcast consumer: {}", e.what());
    }
    if (!assigned_)
      for (int i = 0; i < 10 && !stopping_; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  while (!stopping_) {
    std::unique_ptr<RdKafka::Message> msg(consumer_->consume(200));
    if (msg->err() != RdKafka::ERR_NO_ERROR)
      continue;  // timeouts and partition ends; the client reconnects by itself
    consumed_message m;
    m.topic = msg->topic_name();
    m.partition = msg->partition();
    m.offset = msg->offset();
    if (msg->key())
      m.key = *msg->key();
    m.value.assign(static_cast<const char*>(msg->payload()), msg->len());
    on_message_(m);
  }
}

}  // namespace op::kafka
