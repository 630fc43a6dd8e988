#pragma once
// The transactional outbox: an event is written in the same PostgreSQL transaction as the
// state change that caused it, and published to Kafka afterwards by outbox_relay. The event
// id is assigned here, once, so a republished event carries the same id and consumers can
// drop the duplicate.

#include <chrono>
#include <cstdint>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <utility>
#include <vector>

#include "platform/kafka/producer.hpp"

namespace op::outbox {

// A payload the relay renders when it publishes instead of one stored whole: `renderer` names
// a renderer registered with the relay, `input` is what it needs besides the message key.
struct rendered_payload {
  std::string renderer;
  std::string input;
};

struct message {
  std::string topic;
  std::string key;  // Kafka message key: the order id, so one order stays in one partition
  std::string event_type;
  std::string correlation_id;
  std::string payload;      // JSON
  std::string traceparent;  // W3C trace context header; empty for none
  // Further Kafka headers, e.g. the dlq-* headers of a dead letter.
  std::vector<std::pair<std::string, std::string>> headers = {};
  // When set, published verbatim as the message value instead of the event envelope around
  // `payload`: a dead letter or a replay carries the original message's exact bytes.
  std::optional<std::string> raw_value = std::nullopt;
  // When set, `payload` is empty and the relay renders it (see outbox_relay's renderers).
  std::optional<rendered_payload> rendered = std::nullopt;
};

// `headers` as the JSON object the outbox stores.
std::string headers_json(const std::vector<std::pair<std::string, std::string>>& headers);

// Registers the prepared statements append() uses; run on every new connection.
void prepare_statements(pqxx::connection& connection);

// A message as its row holds it: what the envelope needs besides the message.
struct stored_message {
  std::int64_t id = 0;
  std::string event_id;
  std::string occurred_at;  // the envelope's occurredAt
};

// Adds the message to the outbox within `tx`; the relay finds it once `tx` commits.
void append(pqxx::work& tx, const message& m);
// Adds all of them, in this order, in one statement. With `relay_after`, the caller publishes
// them itself once `tx` committed (after_commit_publisher), and the relay takes a row only
// that long after the commit. The rows in the messages' order.
std::vector<stored_message> append_all(
    pqxx::work& tx, const std::vector<message>& messages,
    std::optional<std::chrono::milliseconds> relay_after = std::nullopt);

// The Kafka message of an outbox row: the documented envelope around `payload` (or the raw
// value), key, and the event-id, event-type, correlation-id and traceparent headers, which
// the message's own headers replace (a replay keeps its original event-id).
kafka::outgoing_message kafka_message(const message& m, const std::string& event_id,
                                      const std::string& occurred_at);

}  // namespace op::outbox
