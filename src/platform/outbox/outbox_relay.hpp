#pragma once
// Publishes outbox rows to Kafka and deletes them. Runs on its own thread with its own
// PostgreSQL connection, polling the outbox every few milliseconds while idle. (Not LISTEN/NOTIFY:
// PostgreSQL serializes the commits of notifying transactions on one lock, which capped the whole
// pipeline's throughput.) Every replica runs a relay; one at a time publishes (a transaction-scoped
// advisory lock), so several replicas never contend for the same rows. Rows are deleted in a
// transaction that commits only once Kafka acknowledged the whole batch, so nothing is lost while
// the broker is down, and a replica that dies mid-batch hands the turn to the next at once. A crash
// between acknowledgement and commit, or a batch that Kafka took only in part, publishes rows again
// with the same event ids.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "platform/kafka/producer.hpp"

namespace op::outbox {

// One row of a renderer's batch: the message key and the row's render_input.
struct render_request {
  std::string key;
  std::string input;
};
// Renders the payloads of rows stored with a renderer's name (outbox::rendered_payload), one
// per request and in their order, reading what it needs within the relay's transaction.
using payload_renderer =
    std::function<std::vector<std::string>(pqxx::work&, const std::vector<render_request>&)>;

struct relay_settings {
  std::string conninfo;
  int batch_size = 500;
  std::chrono::milliseconds idle_wait{5};
  std::map<std::string, payload_renderer, std::less<>> renderers = {};
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
  // The payloads of the rows stored for a renderer (empty for the others), by row.
  std::vector<std::string> render_payloads(pqxx::work& tx, const pqxx::result& rows);
  // Updates the backlog gauges, at most once a second.
  void measure_backlog(class pqxx_session& session);

  relay_settings settings_;
  kafka::producer& producer_;
  std::atomic<bool> stopping_{false};
  std::chrono::steady_clock::time_point last_measured_{};
  std::thread thread_;
};

}  // namespace op::outbox
