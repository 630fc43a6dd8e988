#pragma once
// The transactional outbox: an event is written in the same PostgreSQL transaction as the
// state change that caused it, and published to Kafka afterwards by outbox_relay. The event
// id is assigned here, once, so a republished event carries the same id and consumers can
// drop the duplicate.

#include <pqxx/pqxx>
#include <string>

namespace op::outbox {

struct message {
  std::string topic;
  std::string key;  // Kafka message key: the order id, so one order stays in one partition
  std::string event_type;
  std::string correlation_id;
  std::string payload;      // JSON
  std::string traceparent;  // W3C trace context header; empty for none
};

// Registers the prepared statements append() uses; run on every new connection.
void prepare_statements(pqxx::connection& connection);

// Adds the message to the outbox within `tx`; the relay finds it once `tx` commits.
void append(pqxx::work& tx, const message& m);

}  // namespace op::outbox
