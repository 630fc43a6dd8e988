#include "platform/outbox/outbox.hpp"

namespace op::outbox {

void prepare_statements(pqxx::connection& connection) {
  connection.prepare("outbox_append",
                     "INSERT INTO outbox (event_id, topic, message_key, event_type, correlation_id,"
                     " payload) VALUES (gen_random_uuid(), $1, $2, $3, $4, $5)");
  connection.prepare("outbox_wake", std::string("SELECT pg_notify('") + wake_channel + "', '')");
}

void append(pqxx::work& tx, const message& m) {
  tx.exec_prepared("outbox_append", m.topic, m.key, m.event_type, m.correlation_id, m.payload);
  // Notifications are delivered at commit and collapsed per transaction.
  tx.exec_prepared("outbox_wake");
}

}  // namespace op::outbox
