#pragma once
// The dead-letter queue: messages a saga stage gave up on. Each is kept in PostgreSQL (table
// dead_letters, what the admin API lists and replays) and published to dlq.orders with headers
// naming where it came from and why it failed, both in the transaction that gives up on it.
//
// A replay re-injects the original bytes into the original topic through the outbox, with a
// dlq-entry-id header; if that message fails again, its entry is parked again (not a new
// entry, and never re-injected by itself), so a poison pill cannot loop.

#include <cstdint>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "platform/kafka/partitioned_consumer.hpp"

namespace op::orders {

// Error classes, as stored and sent in the dlq-error-class header.
inline constexpr const char* error_undecodable = "undecodable";
inline constexpr const char* error_permanent = "permanent";
inline constexpr const char* error_retries_exhausted = "retries_exhausted";

// The header a replayed message carries: the id of the entry it came from.
inline constexpr const char* replay_header = "dlq-entry-id";

struct failed_message {
  std::string stage;
  std::optional<std::string> order_id;  // unknown for an undecodable message
  const kafka::consumed_message* message = nullptr;
  std::string error_class;
  std::string error_message;
  int attempts = 1;
  std::optional<std::string> first_failure_at;  // ISO-8601; now when unset
};

struct dead_letter {
  std::int64_t id = 0;
  std::string stage;
  std::optional<std::string> order_id;
  std::string topic;
  int partition = 0;
  std::int64_t offset = 0;
  std::string key;
  std::string payload;       // the original bytes
  std::string headers_json;  // the original headers, as a JSON object
  std::string error_class;
  std::string error_message;
  int attempts = 0;
  std::string first_failure_at;
  std::string last_failure_at;
  std::string status;  // PARKED, QUEUED, REPLAYED
  int replay_count = 0;
  std::optional<std::string> replayed_at;
  std::string created_at;
};

struct dead_letter_filter {
  std::optional<std::string> stage;
  std::optional<std::string> status;
  std::int64_t after_id = 0;  // paging: entries with a larger id
  int limit = 50;
};

enum class replay_outcome { replayed, already_replayed, not_found };

class dead_letter_queue {
 public:
  explicit dead_letter_queue(std::string dlq_topic);

  static void prepare_statements(pqxx::connection& connection);

  // Parks `failed` within `tx` and returns its entry id. A replayed message that failed again
  // parks its original entry again.
  std::int64_t park(pqxx::work& tx, const failed_message& failed) const;

  std::vector<dead_letter> list(pqxx::work& tx, const dead_letter_filter& filter) const;
  std::optional<dead_letter> find(pqxx::work& tx, std::int64_t id) const;

  // Re-injects one entry now. An entry already replayed (and not parked again since) is left
  // alone: repeating a replay request changes nothing.
  replay_outcome replay(pqxx::work& tx, std::int64_t id) const;

  // Marks up to `limit` parked entries (of one stage, when given) for replay; replay_queued
  // re-injects them at the configured rate. Returns how many were queued.
  int queue_replay(pqxx::work& tx, const std::optional<std::string>& stage, int limit) const;

  // Re-injects up to `limit` queued entries (rows locked with SKIP LOCKED, so replicas share
  // the work); returns how many.
  int replay_queued(pqxx::work& tx, int limit) const;

  // Entries by status, for the metrics.
  std::vector<std::pair<std::string, std::int64_t>> count_by_status(pqxx::work& tx) const;

 private:
  void reinject(pqxx::work& tx, const dead_letter& entry) const;

  std::string dlq_topic_;
};

}  // namespace op::orders
