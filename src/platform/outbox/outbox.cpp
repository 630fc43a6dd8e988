#include "platform/outbox/outbox.hpp"

#include "platform/json/json_escape.hpp"
#include "platform/pg/hex.hpp"

namespace op::outbox {

void prepare_statements(pqxx::connection& connection) {
  connection.prepare("outbox_append",
                     "INSERT INTO outbox (event_id, topic, message_key, event_type, correlation_id,"
                     " payload, traceparent, headers, raw_payload) VALUES (gen_random_uuid(), $1,"
                     " $2, $3, $4, $5, NULLIF($6, ''), $7::jsonb, decode($8, 'hex'))");
}

std::string headers_json(const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string out = "{";
  for (const auto& [name, value] : headers) {
    if (out.size() > 1)
      out += ',';
    out += json::quoted(name) + ':' + json::quoted(value);
  }
  return out + '}';
}

void append(pqxx::work& tx, const message& m) {
  std::optional<std::string> headers;
  if (!m.headers.empty())
    headers = headers_json(m.headers);
  std::optional<std::string> raw;
  if (m.raw_value)
    raw = pg::to_hex(*m.raw_value);
  tx.exec_prepared("outbox_append", m.topic, m.key, m.event_type, m.correlation_id, m.payload,
                   m.traceparent, headers, raw);
}

}  // namespace op::outbox
