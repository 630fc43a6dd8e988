#include "platform/outbox/outbox.hpp"

namespace op::outbox {

void prepare_statements(pqxx::connection& connection) {
  connection.prepare("outbox_append",
                     "INSERT INTO outbox (event_id, topic, message_key, event_type, correlation_id,"
                     " payload, traceparent) VALUES (gen_random_uuid(), $1, $2, $3, $4, $5,"
                     " NULLIF($6, ''))");
}

void append(pqxx::work& tx, const message& m) {
  tx.exec_prepared("outbox_append", m.topic, m.key, m.event_type, m.correlation_id, m.payload,
                   m.traceparent);
}

}  // namespace op::outbox
