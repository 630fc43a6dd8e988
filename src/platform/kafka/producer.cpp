#include "platform/kafka/producer.hpp"

#include <fmt/format.h>
#include <librdkafka/rdkafkacpp.h>

#include <functional>
#include <mutex>

#include "platform/kafka/kafka_admin.hpp"
#include "platform/log/logging.hpp"

namespace op::kafka {

namespace {
// The delivery reports of one batch; `done` (if any) runs once every message has one.
struct delivery_batch {
  explicit delivery_batch(std::size_t size, std::function<void(std::vector<bool>)> on_done = {})
      : state(size, 0), pending(size), done(std::move(on_done)) {}
  // Records message i's outcome; the last one runs `done`.
  void report(std::size_t i, bool delivered) {
    std::function<void(std::vector<bool>)> finish;
    std::vector<bool> outcome;
    {
      std::lock_guard lock(mutex);
      state[i] = delivered ? 1 : 2;
      if (--pending > 0 || !done)
        return;
      finish = std::move(done);
      outcome.reserve(state.size());
      for (int s : state)
        outcome.push_back(s == 1);
    }
    finish(std::move(outcome));
  }
  bool complete() {
    std::lock_guard lock(mutex);
    return pending == 0;
  }
  std::mutex mutex;
  std::vector<int> state;  // 0 pending, 1 delivered, 2 failed
  std::size_t pending;
  std::function<void(std::vector<bool>)> done;
};
// Each message carries its own slot, owned by the delivery report that frees it, so a report
// arriving after send_batch gave up writes into live memory.
struct delivery_slot {
  std::shared_ptr<delivery_batch> batch;
  std::size_t index;
};
}  // namespace

class producer::delivery_reporter final : public RdKafka::DeliveryReportCb,
                                          public RdKafka::EventCb {
 public:
  void dr_cb(RdKafka::Message& message) override {
    std::unique_ptr<delivery_slot> slot(static_cast<delivery_slot*>(message.msg_opaque()));
    if (slot)
      slot->batch->report(slot->index, message.err() == RdKafka::ERR_NO_ERROR);
    if (message.err() != RdKafka::ERR_NO_ERROR)
      log::get("kafka")->warn("delivery to {} failed: {}", message.topic_name(), message.errstr());
  }
  void event_cb(RdKafka::Event& event) override {
    static auto logger = log::get("kafka");
    if (event.type() == RdKafka::Event::EVENT_LOG)
      logger->debug("producer {}: {}", event.fac(), event.str());
    else if (event.type() == RdKafka::Event::EVENT_ERROR)
      logger->debug("producer error: {}", event.str());
  }
};

producer::producer(const std::string& bootstrap_servers, std::chrono::milliseconds delivery_timeout,
                   std::chrono::milliseconds linger)
    : reporter_(std::make_unique<delivery_reporter>()), delivery_timeout_(delivery_timeout) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  auto set = [&](const std::string& key, const std::string& value) {
    if (conf->set(key, value, err) != RdKafka::Conf::CONF_OK)
      throw kafka_error(fmt::format("producer {}={}: {}", key, value, err));
  };
  set("bootstrap.servers", bootstrap_servers);
  set("enable.idempotence", "true");
  set("acks", "all");
  set("linger.ms", std::to_string(linger.count()));
  set("message.timeout.ms", std::to_string(delivery_timeout.count()));
  set("compression.type", "lz4");
  if (conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(reporter_.get()), err) !=
          RdKafka::Conf::CONF_OK ||
      conf->set("event_cb", static_cast<RdKafka::EventCb*>(reporter_.get()), err) !=
          RdKafka::Conf::CONF_OK)
    throw kafka_error("producer callbacks: " + err);
  producer_.reset(RdKafka::Producer::create(conf.get(), err));
  if (!producer_)
    throw kafka_error("cannot create producer: " + err);
}

producer::~producer() {
  if (producer_)
    producer_->flush(2000);
  prepared_topics_.clear();  // before the handle they belong to
}

std::vector<std::string> producer::prepare_topics(const std::vector<std::string>& topics,
                                                  std::chrono::milliseconds timeout) {
  std::vector<std::string> unknown;
  for (const auto& name : topics) {
    std::string err;
    std::unique_ptr<RdKafka::Topic> topic(
        RdKafka::Topic::create(producer_.get(), name, nullptr, err));
    RdKafka::Metadata* raw = nullptr;
    bool known =
        topic && producer_->metadata(false, topic.get(), &raw, static_cast<int>(timeout.count())) ==
                     RdKafka::ERR_NO_ERROR;
    std::unique_ptr<RdKafka::Metadata> metadata(raw);
    // The call succeeds for a topic the cluster does not have; the topic's own entry says so.
    if (known) {
      const auto* topics_found = metadata->topics();
      known = topics_found->size() == 1 && topics_found->front()->err() == RdKafka::ERR_NO_ERROR &&
              !topics_found->front()->partitions()->empty();
    }
    if (!known)
      unknown.push_back(name);
    if (topic)
      prepared_topics_.push_back(std::move(topic));
  }
  return unknown;
}

namespace {
// Hands every message to librdkafka with its slot in `batch`; a message it refuses is reported
// failed at once.
void enqueue(RdKafka::Producer& producer, const std::vector<outgoing_message>& messages,
             const std::shared_ptr<delivery_batch>& batch) {
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    for (;;) {
      RdKafka::Headers* headers = RdKafka::Headers::create();
      for (const auto& h : m.headers)
        headers->add(h.name, h.value);
      auto* slot = new delivery_slot{batch, i};
      auto code =
          producer.produce(m.topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
                           const_cast<char*>(m.payload.data()), m.payload.size(), m.key.data(),
                           m.key.size(), 0, headers, slot);
      if (code == RdKafka::ERR_NO_ERROR)
        break;  // librdkafka owns headers and slot now
      delete headers;
      delete slot;
      if (code == RdKafka::ERR__QUEUE_FULL) {
        producer.poll(50);
        continue;
      }
      log::get("kafka")->warn("cannot enqueue message for {}: {}", m.topic, RdKafka::err2str(code));
      batch->report(i, false);
      break;
    }
  }
}
}  // namespace

std::vector<bool> producer::send_batch(const std::vector<outgoing_message>& messages) {
  auto batch = std::make_shared<delivery_batch>(messages.size());
  enqueue(*producer_, messages, batch);
  auto deadline = std::chrono::steady_clock::now() + delivery_timeout_ + std::chrono::seconds(5);
  while (!batch->complete() && std::chrono::steady_clock::now() < deadline)
    producer_->poll(10);
  std::lock_guard lock(batch->mutex);
  std::vector<bool> delivered(messages.size());
  for (std::size_t i = 0; i < messages.size(); ++i)
    delivered[i] = batch->state[i] == 1;
  return delivered;
}

void producer::send_async(const std::vector<outgoing_message>& messages,
                          std::function<void(std::vector<bool>)> done) {
  if (messages.empty())
    return done({});
  enqueue(*producer_, messages, std::make_shared<delivery_batch>(messages.size(), std::move(done)));
}

void producer::poll(std::chrono::milliseconds timeout) {
  producer_->poll(static_cast<int>(timeout.count()));
}

bool producer::flush(std::chrono::milliseconds timeout) {
  return producer_->flush(static_cast<int>(timeout.count())) == RdKafka::ERR_NO_ERROR;
}

}  // namespace op::kafka
