#pragma once
// An idempotent Kafka producer (enable.idempotence, acks=all) that sends a batch and waits
// for every message's delivery report, so the caller knows exactly which messages the
// cluster has acknowledged. Used from one thread at a time.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace RdKafka {
class Producer;
class Topic;
}  // namespace RdKafka

namespace op::kafka {

struct header {
  std::string name;
  std::string value;
};

struct outgoing_message {
  std::string topic;
  std::string key;
  std::string payload;
  std::vector<header> headers;
};

class producer {
 public:
  // `delivery_timeout`: how long librdkafka keeps trying one message before reporting
  // failure (message.timeout.ms), e.g. while the broker is down.
  producer(const std::string& bootstrap_servers, std::chrono::milliseconds delivery_timeout,
           std::chrono::milliseconds linger = std::chrono::milliseconds(2));
  ~producer();
  producer(const producer&) = delete;
  producer& operator=(const producer&) = delete;

  // Sends every message and waits for the delivery reports; element i tells whether
  // messages[i] was acknowledged by the cluster.
  std::vector<bool> send_batch(const std::vector<outgoing_message>& messages);
  // Sends every message without waiting. Once each has its delivery report, `done` runs on
  // the thread that calls poll(), element i telling whether messages[i] was acknowledged.
  void send_async(const std::vector<outgoing_message>& messages,
                  std::function<void(std::vector<bool>)> done);
  // Serves delivery reports for at most `timeout`.
  void poll(std::chrono::milliseconds timeout);

  // Learns the partitions of the topics it will write before their first message, and
  // returns the topics it could not look up within `timeout`. Without it librdkafka looks a
  // topic up only on its 1-second topic scan after the first produce() names it, so after
  // every start the first event of each topic, and the batch waiting with it, stalled up to 1 s.
  std::vector<std::string> prepare_topics(const std::vector<std::string>& topics,
                                          std::chrono::milliseconds timeout);

  // Waits for everything in flight; returns false when some did not make it in time.
  bool flush(std::chrono::milliseconds timeout);

 private:
  class delivery_reporter;
  std::unique_ptr<delivery_reporter> reporter_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::vector<std::unique_ptr<RdKafka::Topic>> prepared_topics_;  // kept: they hold the metadata
  std::chrono::milliseconds delivery_timeout_;
};

}  // namespace op::kafka
