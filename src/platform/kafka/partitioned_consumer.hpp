#pragma once
// A consumer group member for one topic that handles each assigned partition on its own
// Asio strand of a shared thread pool. Within a partition several messages are in flight at
// once (a slow payment must not hold back the other orders), but messages with the same key
// (order id) run strictly one after another, in offset order. A partition's offset is stored
// for commit only up to the first message not yet finished, and only after its handler
// returned, i.e. after the handler's PostgreSQL transaction committed: at-least-once.
//
// Owned by the composition root. start()/stop() from one thread; the handler runs on the
// thread pool and must not throw.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "platform/runtime/asio.hpp"

namespace RdKafka {
class KafkaConsumer;
}

namespace op::kafka {

struct consumed_message {
  std::string topic;
  int partition = 0;
  std::int64_t offset = 0;
  std::string key;
  std::string value;
  std::map<std::string, std::string> headers;
};

struct consumer_settings {
  std::string bootstrap_servers;
  std::string group_id;
  std::string topic;
  std::size_t max_in_flight_per_partition = 256;
};

class partitioned_consumer {
 public:
  using handler = std::function<asio::awaitable<void>(const consumed_message&)>;

  partitioned_consumer(consumer_settings settings, asio::thread_pool& workers, handler h);
  ~partitioned_consumer();

  void start();
  // Stops fetching, waits up to `drain` for messages in flight, stores their offsets,
  // commits and leaves the group.
  void stop(std::chrono::milliseconds drain);

  // Messages handed to handlers and not yet finished, over all partitions.
  std::size_t in_flight() const { return in_flight_; }

  struct partition_lag {
    std::string topic;
    int partition;
    std::int64_t lag;  // high watermark minus the next offset to consume
  };
  // As last measured by the poll thread (every few seconds).
  std::vector<partition_lag> lag() const;

 private:
  class lane;
  class rebalancer;
  void poll_loop();
  std::shared_ptr<lane> lane_for(int partition);
  void revoke_all();
  void measure_lag();

  consumer_settings settings_;
  asio::thread_pool& workers_;
  handler handler_;
  std::unique_ptr<rebalancer> rebalancer_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::mutex lanes_mutex_;
  std::map<int, std::shared_ptr<lane>> lanes_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> in_flight_{0};
  std::thread poller_;
  // Committed offsets of the assigned partitions that consumed nothing yet, by partition;
  // touched only on the poll thread (measure_lag and the rebalance callback run there).
  std::map<int, std::int64_t> committed_at_assignment_;
  mutable std::mutex lag_mutex_;
  std::vector<partition_lag> lag_;
};

}  // namespace op::kafka
