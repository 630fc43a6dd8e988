// Fuzz target: what every saga stage decodes from a consumed Kafka message — the event
// envelope in the message value (decode_event_envelope), and the message headers, which a
// stage stores as JSON when it schedules a retry or dead-letters the message
// (outbox::headers_json, written into a jsonb column) and reads back when the retry runs or
// the dead letter is replayed (decode_headers_json).
//
// Input: optional header lines "name: value" (any bytes but a newline), an empty line, then
// the message value. An input without an empty line, or starting with '{', is all value.
//
// Properties, beyond not crashing:
// - decoding is deterministic;
// - a decoded envelope holds exactly the eventId and orderId strings of the JSON (every byte,
//   none cut off), an event id shaped like a UUID and an order id of 1 to 64 bytes that
//   PostgreSQL can store as text (valid UTF-8, no NUL): the stage writes it into text columns,
//   and one it cannot store would leave the message impossible even to dead-letter;
// - an envelope the decoder accepts, written again as a canonical envelope, decodes the same;
//   and a JSON object whose eventId and orderId have those shapes is always accepted;
// - headers_json is a valid JSON object that PostgreSQL's jsonb takes (valid UTF-8, no
//   \u0000) whatever bytes the headers hold, and decode_headers_json gives the headers back
//   (exactly, when they were valid UTF-8 without NUL);
// - decode_headers_json of arbitrary text yields exactly the string members of the object.

#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fuzz_check.hpp"
#include "orders/adapters/event_envelope.hpp"
#include "platform/json/json_escape.hpp"
#include "platform/outbox/outbox.hpp"

using namespace op;
using headers = std::vector<std::pair<std::string, std::string>>;

namespace {

struct message {
  headers head;
  std::string_view value;
};

message split(std::string_view input) {
  message m{{}, input};
  auto blank = input.find("\n\n");
  if (input.empty() || input.front() == '{' || blank == std::string_view::npos)
    return m;
  auto block = input.substr(0, blank);
  m.value = input.substr(blank + 2);
  while (!block.empty()) {
    auto eol = block.find('\n');
    auto line = block.substr(0, eol);
    auto colon = line.find(": ");
    if (colon == std::string_view::npos)
      m.head.emplace_back(line, "");
    else
      m.head.emplace_back(line.substr(0, colon), line.substr(colon + 2));
    if (eol == std::string_view::npos)
      break;
    block.remove_prefix(eol + 1);
  }
  return m;
}

bool is_uuid_shaped(std::string_view id) {
  if (id.size() != 36)
    return false;
  for (std::size_t i = 0; i < id.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? id[i] != '-' : !std::isxdigit(static_cast<unsigned char>(id[i])))
      return false;
  }
  return true;
}

bool storable_text(std::string_view s) {
  return fuzz::is_utf8(s) && s.find('\0') == std::string_view::npos;
}

// The string member `name` of `doc`, every byte of it.
std::optional<std::string> member(const rapidjson::Document& doc, const char* name) {
  auto it = doc.FindMember(name);
  if (it == doc.MemberEnd() || !it->value.IsString())
    return std::nullopt;
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

void check_envelope(std::string_view value) {
  auto decoded = orders::decode_event_envelope(value);
  auto again = orders::decode_event_envelope(value);
  FUZZ_CHECK(decoded.has_value() == again.has_value() &&
                 (!decoded ||
                  (decoded->event_id == again->event_id && decoded->order_id == again->order_id)),
             "two decodes differ");

  // The JSON read independently, with the parser's default flags (as the stage reads it).
  rapidjson::Document doc;
  doc.Parse(value.data(), value.size());
  std::optional<std::string> event_id, order_id;
  if (!doc.HasParseError() && doc.IsObject()) {
    event_id = member(doc, "eventId");
    order_id = member(doc, "orderId");
  }

  if (decoded) {
    FUZZ_CHECK(event_id && *event_id == decoded->event_id, "eventId: " + decoded->event_id);
    FUZZ_CHECK(order_id && *order_id == decoded->order_id, "orderId: " + decoded->order_id);
    FUZZ_CHECK(is_uuid_shaped(decoded->event_id), decoded->event_id);
    FUZZ_CHECK(!decoded->order_id.empty() && decoded->order_id.size() <= 64, decoded->order_id);
    FUZZ_CHECK(storable_text(decoded->order_id), "orderId PostgreSQL cannot store");

    auto canonical = R"({"eventId":)" + json::quoted(decoded->event_id) +
                     R"(,"eventType":"OrderPlaced","orderId":)" + json::quoted(decoded->order_id) +
                     R"(,"occurredAt":"2026-11-24T16:41:32.688Z","payload":{}})";
    auto reread = orders::decode_event_envelope(canonical);
    FUZZ_CHECK(
        reread && reread->event_id == decoded->event_id && reread->order_id == decoded->order_id,
        canonical);
  } else if (event_id && order_id && is_uuid_shaped(*event_id) && !order_id->empty() &&
             order_id->size() <= 64 && storable_text(*order_id)) {
    FUZZ_CHECK(false, "refused an envelope with eventId " + *event_id);
  }
}

void check_headers(const headers& head) {
  auto json = outbox::headers_json(head);
  rapidjson::Document doc;
  FUZZ_CHECK(fuzz::is_json(json, doc) && doc.IsObject(), json);
  for (const auto& m : doc.GetObject())
    FUZZ_CHECK(std::string_view(m.name.GetString(), m.name.GetStringLength()).find('\0') ==
                       std::string_view::npos &&
                   std::string_view(m.value.GetString(), m.value.GetStringLength()).find('\0') ==
                       std::string_view::npos,
               "U+0000 in " + json);
  auto back = orders::decode_headers_json(json);
  FUZZ_CHECK(back.size() == head.size(), json);
  for (std::size_t i = 0; i < head.size(); ++i) {
    if (storable_text(head[i].first) && storable_text(head[i].second))
      FUZZ_CHECK(back[i] == head[i], json);
    FUZZ_CHECK(storable_text(back[i].first) && storable_text(back[i].second), json);
  }
}

void check_headers_text(std::string_view text) {
  auto decoded = orders::decode_headers_json(text);
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  headers expected;
  if (!doc.HasParseError() && doc.IsObject())
    for (const auto& m : doc.GetObject())
      if (m.value.IsString())
        expected.emplace_back(std::string(m.name.GetString(), m.name.GetStringLength()),
                              std::string(m.value.GetString(), m.value.GetStringLength()));
  FUZZ_CHECK(decoded == expected, std::string(text));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto m = split(std::string_view(reinterpret_cast<const char*>(data), size));
  check_envelope(m.value);
  check_headers(m.head);
  check_headers_text(m.value);
  return 0;
}
