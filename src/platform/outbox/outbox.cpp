#include "platform/outbox/outbox.hpp"

#include "platform/json/json_escape.hpp"
#include "platform/pg/array.hpp"
#include "platform/pg/hex.hpp"

namespace op::outbox {

void prepare_statements(pqxx::connection& connection) {
  connection.prepare("outbox_append",
                     "INSERT INTO outbox (event_id, topic, message_key, event_type, correlation_id,"
                     " payload, traceparent, headers, raw_payload, render_with, render_input)"
                     " VALUES (gen_random_uuid(), $1, $2, $3, $4, CASE WHEN $9::text IS NULL"
                     " THEN $5 END, NULLIF($6, ''), $7::jsonb, decode($8, 'hex'), $9, $10)");
  // Many in one statement, in the given order (the relay publishes by id).
  connection.prepare(
      "outbox_append_all",
      "INSERT INTO outbox (event_id, topic, message_key, event_type, correlation_id, payload,"
      " traceparent, headers, raw_payload, render_with, render_input) SELECT gen_random_uuid(),"
      " topic, message_key, event_type, correlation_id, CASE WHEN render_with IS NULL THEN"
      " payload END, NULLIF(traceparent, ''), headers::jsonb, decode(raw_payload, 'hex'),"
      " render_with, render_input FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
      " $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])"
      " WITH ORDINALITY AS m(topic, message_key, event_type, correlation_id, payload,"
      " traceparent, headers, raw_payload, render_with, render_input, n) ORDER BY n");
}

std::string headers_json(const std::vector<std::pair<std::string, std::string>>& headers) {
  // Header bytes are anyone's: jsonb refuses U+0000, so a NUL is kept as U+FFFD, as bytes
  // that are not UTF-8 are (json::quoted).
  auto text = [](std::string s) {
    for (std::size_t at = s.find('\0'); at != std::string::npos; at = s.find('\0', at))
      s.replace(at, 1, "\xEF\xBF\xBD");
    return json::quoted(s);
  };
  std::string out = "{";
  for (const auto& [name, value] : headers) {
    if (out.size() > 1)
      out += ',';
    out += text(name) + ':' + text(value);
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
  std::optional<std::string> renderer, input;
  if (m.rendered) {
    renderer = m.rendered->renderer;
    input = m.rendered->input;
  }
  tx.exec_prepared("outbox_append", m.topic, m.key, m.event_type, m.correlation_id, m.payload,
                   m.traceparent, headers, raw, renderer, input);
}

void append_all(pqxx::work& tx, const std::vector<message>& messages) {
  if (messages.empty())
    return;
  if (messages.size() == 1)
    return append(tx, messages.front());
  std::vector<std::string_view> topics, keys, types, correlations, payloads, traceparents;
  std::vector<std::string> headers, raws;  // owned: built here
  std::vector<std::optional<std::string_view>> header_refs, raw_refs, renderers, inputs;
  headers.reserve(messages.size());
  raws.reserve(messages.size());
  for (const auto& m : messages) {
    topics.push_back(m.topic);
    keys.push_back(m.key);
    types.push_back(m.event_type);
    correlations.push_back(m.correlation_id);
    payloads.push_back(m.payload);
    traceparents.push_back(m.traceparent);
    if (m.headers.empty()) {
      header_refs.emplace_back();
    } else {
      headers.push_back(headers_json(m.headers));
      header_refs.emplace_back(headers.back());
    }
    if (m.raw_value) {
      raws.push_back(pg::to_hex(*m.raw_value));
      raw_refs.emplace_back(raws.back());
    } else {
      raw_refs.emplace_back();
    }
    renderers.emplace_back();
    inputs.emplace_back();
    if (m.rendered) {
      renderers.back() = m.rendered->renderer;
      inputs.back() = m.rendered->input;
    }
  }
  tx.exec_prepared("outbox_append_all", pg::text_array(topics), pg::text_array(keys),
                   pg::text_array(types), pg::text_array(correlations), pg::text_array(payloads),
                   pg::text_array(traceparents), pg::nullable_text_array(header_refs),
                   pg::nullable_text_array(raw_refs), pg::nullable_text_array(renderers),
                   pg::nullable_text_array(inputs));
}

}  // namespace op::outbox
