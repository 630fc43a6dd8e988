#pragma once
// Publishes a transaction's outbox rows right after it commits, instead of leaving them for
// the relay's next poll, and deletes the rows Kafka acknowledged. Each hop of an order was
// the relay's poll plus its whole batch's round trip; now it is this send.
//
// The rows are written with publish_after = commit + `relay_after` (outbox::append_all), so
// what this publisher does not get acknowledged in that time (the replica crashed, Kafka is
// away) the relay publishes instead: nothing is lost, and a row both send is a duplicate with
// the same event id, which consumers drop. Its producer gives a message up after the same
// time, so the two rarely overlap.
//
// Events without a row (publish_unstored) have no relay behind them: only their writer can send
// them again, and only once the order has waited `unstored_timeout` (the saga's
// republish-after). So they go through a second producer that keeps trying that long: a slow
// moment of Kafka (its first seconds after a start, a leader moving) delays them instead of
// losing them for that long.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "platform/kafka/producer.hpp"
#include "platform/outbox/outbox.hpp"

namespace op::outbox {

class after_commit_publisher {
 public:
  after_commit_publisher(std::string conninfo, const std::string& bootstrap_servers,
                         std::chrono::milliseconds relay_after,
                         std::chrono::milliseconds unstored_timeout);
  ~after_commit_publisher();
  after_commit_publisher(const after_commit_publisher&) = delete;
  after_commit_publisher& operator=(const after_commit_publisher&) = delete;

  // How long after its commit the relay may take a row this publisher was handed.
  std::chrono::milliseconds relay_after() const { return relay_after_; }
  // Its own producers, e.g. to look up the topics they will write before the first event.
  std::vector<kafka::producer*> producers() { return {&producer_, &unstored_producer_}; }

  void start();
  // Waits up to `timeout` for what is in flight, deletes what was acknowledged, and stops.
  void stop(std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // Sends the rows of a committed transaction, in their order; never blocks on Kafka.
  void publish(const std::vector<message>& messages, const std::vector<stored_message>& rows);
  // Sends messages of a committed transaction that have no outbox row, each with a new event
  // id: what the writer can send again from its own rows if Kafka never acknowledges them (a
  // running saga's next event: step_engine::republish_stalled). Never blocks on Kafka.
  void publish_unstored(const std::vector<message>& messages);

 private:
  void run();
  // Deletes the acknowledged rows collected so far; false when the database refused.
  bool delete_acknowledged(class pqxx_connection_holder& db);

  std::string conninfo_;
  std::chrono::milliseconds relay_after_;
  kafka::producer producer_;
  kafka::producer unstored_producer_;
  std::mutex mutex_;
  std::vector<std::int64_t> acknowledged_;  // under mutex_
  std::atomic<std::int64_t> in_flight_{0};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace op::outbox
