#pragma once
// Reads every partition of some topics from their end, outside any consumer group (assign(),
// no commits, no rebalances): each replica sees every message published after it started.
// For notifications that every replica needs (an order reached its final state), never for
// work that must be done once. Partitions added to a topic after start() are not read.
//
// Owned by the composition root; start()/stop() from one thread. The callback runs on the
// consumer's own poll thread and must be quick and must not throw.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "platform/kafka/partitioned_consumer.hpp"

namespace op::kafka {

class broadcast_consumer {
 public:
  using callback = std::function<void(const consumed_message&)>;

  broadcast_consumer(std::string bootstrap_servers, std::vector<std::string> topics,
                     callback on_message);
  ~broadcast_consumer();

  // Starts the poll thread, which reads the topics' partitions (again every second until
  // Kafka answers) and assigns each at its end.
  void start();
  void stop();

  // True once every partition is assigned: messages published from then on are seen.
  bool assigned() const { return assigned_; }

 private:
  void poll_loop();
  bool assign_all();

  std::string bootstrap_servers_;
  std::vector<std::string> topics_;
  callback on_message_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> assigned_{false};
  std::thread poller_;
};

}  // namespace op::kafka
