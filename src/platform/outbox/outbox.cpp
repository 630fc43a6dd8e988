#include "platform/outbox/outbox.hpp"

#include <algorithm>

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
  // Ids are drawn in the order the rows are inserted, so they tell the messages' order.
  connection.prepare(
      "outbox_append_all",
      "INSERT INTO outbox (event_id, topic, message_key, event_type, correlation_id, payload,"
      " traceparent, headers, raw_payload, render_with, render_input, publish_after)"
      " SELECT gen_random_uuid(), topic, message_key, event_type, correlation_id,"
      " CASE WHEN render_with IS NULL THEN payload END, NULLIF(traceparent, ''),"
      " headers::jsonb, decode(raw_payload, 'hex'), render_with, render_input,"
      " now() + make_interval(secs => $11::float8) FROM unnest($1::text[], $2::text[],"
      " $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],"
      " $10::text[]) WITH ORDINALITY AS m(topic, message_key, event_type, correlation_id,"
      " payload, traceparent, headers, raw_payload, render_with, render_input, n) ORDER BY n"
      " RETURNING id, event_id::text, to_char(created_at AT TIME ZONE 'UTC',"
      " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')");
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

std::vector<stored_message> append_all(pqxx::work& tx, const std::vector<message>& messages,
                                       std::optional<std::chrono::milliseconds> relay_after) {
  if (messages.empty())
    return {};
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
  std::optional<double> delay_seconds;
  if (relay_after)
    delay_seconds = std::chrono::duration<double>(*relay_after).count();
  std::vector<stored_message> stored;
  stored.reserve(messages.size());
  for (const auto& r : tx.exec_prepared(
           "outbox_append_all", pg::text_array(topics), pg::text_array(keys), pg::text_array(types),
           pg::text_array(correlations), pg::text_array(payloads), pg::text_array(traceparents),
           pg::nullable_text_array(header_refs), pg::nullable_text_array(raw_refs),
           pg::nullable_text_array(renderers), pg::nullable_text_array(inputs), delay_seconds))
    stored.push_back({r[0].as<std::int64_t>(), r[1].as<std::string>(), r[2].as<std::string>()});
  std::sort(stored.begin(), stored.end(),
            [](const stored_message& a, const stored_message& b) { return a.id < b.id; });
  return stored;
}

namespace {
// The documented event envelope around an order event's payload.
std::string envelope(const std::string& event_id, const std::string& event_type,
                     const std::string& order_id, const std::string& occurred_at,
                     const std::string& payload) {
  std::string out;
  out.reserve(payload.size() + 200);
  out += R"({"eventId":)" + json::quoted(event_id);
  out += R"(,"eventType":)" + json::quoted(event_type);
  out += R"(,"orderId":)" + json::quoted(order_id);
  out += R"(,"occurredAt":)" + json::quoted(occurred_at);
  out += R"(,"payload":)" + payload + "}";
  return out;
}
}  // namespace

kafka::outgoing_message kafka_message(const message& m, const std::string& event_id,
                                      const std::string& occurred_at) {
  kafka::outgoing_message out{
      m.topic,
      m.key,
      m.raw_value ? *m.raw_value : envelope(event_id, m.event_type, m.key, occurred_at, m.payload),
      {{"event-id", event_id}, {"event-type", m.event_type}, {"correlation-id", m.correlation_id}}};
  if (!m.traceparent.empty())
    out.headers.push_back({"traceparent", m.traceparent});
  for (const auto& header : m.headers) {
    const auto& name = header.first;
    std::erase_if(out.headers, [&](const kafka::header& h) { return h.name == name; });
    out.headers.push_back({name, header.second});
  }
  return out;
}

}  // namespace op::outbox
