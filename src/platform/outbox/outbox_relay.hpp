#pragma once
// Publishes outbox rows to Kafka and deletes them. Runs on its own thread with its own
// PostgreSQL connection, polling the partial index of unsent rows every few milliseconds
// while idle. (Not LISTEN/NOTIFY: PostgreSQL serializes the commits of notifying
// transactions on one lock, which capped the whole pipeline's throughput.)
// Rows are taken with FOR UPDATE SKIP LOCKED, so several replicas share the work, and deleted
// in a transaction that commits only once Kafka acknowledged the whole batch, so nothing is
// lost while the broker is down. A crash between acknowledgement and commit, or a batch that
// Kafka took only in part, publishes rows again with the same event ids.

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "platform/kafka/producer.hpp"

namespace op::outbox {

struct relay_settings {
  std::string conninfo;
  int batch_size = 500;
  std::chrono::milliseconds idle_wait{5};
};

class outbox_relay {
 public:
  outbox_relay(relay_settings settings, kafka::producer& producer);
  ~outbox_relay();

  void start();
  void stop();  // finishes the batch in hand, then returns

 private:
  void run();
  // Publishes one batch; returns how many rows it claimed.
  int relay_batch(class pqxx_session& session);
  // Updates the backlog gauges, at most once a second.
  void measure_backlog(class pqxx_session& session);

  relay_settings settings_;
  kafka::producer& producer_;
  std::atomic<bool> stopping_{false};
  std::chrono::steady_clock::time_point last_measured_{};
  std::thread thread_;
};

// The Kafka message value of an outbox row: the documented event envelope.
std::string envelope(const std::string& event_id, const std::string& event_type,
                     const std::string& order_id, const std::string& occurred_at,
                     const std::string& payload);

}  // namespace op::outbox
