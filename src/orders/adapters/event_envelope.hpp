#pragma once
// Decoding what a saga stage reads from a consumed Kafka message, apart from the Kafka and
// PostgreSQL work around it (so it can be unit-tested and fuzzed):
// - the event envelope {"eventId","eventType","orderId","occurredAt","payload":{...}}, of which
//   a stage needs the event id (a UUID: it goes into a uuid column) and the order id;
// - the message headers as stored in PostgreSQL, a JSON object of strings (stage_retries and
//   dead_letters keep them so a retry or a replay carries them again).

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace op::orders {

struct event_envelope {
  std::string event_id;  // xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, hex digits
  std::string order_id;  // 1..64 bytes
};

// nullopt for anything that is not such an envelope: a poison pill.
std::optional<event_envelope> decode_event_envelope(std::string_view value);

// The string members of a JSON object of headers, in order; members that are not strings
// are left out, and anything but a JSON object gives none.
std::vector<std::pair<std::string, std::string>> decode_headers_json(std::string_view json);

}  // namespace op::orders
