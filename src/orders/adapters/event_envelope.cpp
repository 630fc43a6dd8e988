#include "orders/adapters/event_envelope.hpp"

#include <rapidjson/document.h>

#include <cctype>

#include "platform/json/json_escape.hpp"

namespace op::orders {

std::optional<event_envelope> decode_event_envelope(std::string_view value) {
  rapidjson::Document doc;
  // Iterative: a poison pill nested a million levels deep must not overflow the stack.
  doc.Parse<rapidjson::kParseIterativeFlag>(value.data(), value.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("eventId") ||
      !doc["eventId"].IsString() || !doc.HasMember("orderId") || !doc["orderId"].IsString())
    return std::nullopt;
  const auto& event_id = doc["eventId"];
  const auto& order_id = doc["orderId"];
  event_envelope fields{{event_id.GetString(), event_id.GetStringLength()},
                        {order_id.GetString(), order_id.GetStringLength()}};
  // The event id goes into a uuid column: anything else would fail the step for ever. The
  // order id goes into text columns, which hold neither U+0000 nor bytes that are not UTF-8.
  static const std::string uuid_shape = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
  if (fields.event_id.size() != uuid_shape.size() || fields.order_id.empty() ||
      fields.order_id.size() > 64 || fields.order_id.find('\0') != std::string::npos ||
      !json::is_valid_utf8(fields.order_id))
    return std::nullopt;
  for (std::size_t i = 0; i < uuid_shape.size(); ++i)
    if ((uuid_shape[i] == '-') != (fields.event_id[i] == '-') ||
        (uuid_shape[i] == 'x' && !std::isxdigit(static_cast<unsigned char>(fields.event_id[i]))))
      return std::nullopt;
  return fields;
}

std::vector<std::pair<std::string, std::string>> decode_headers_json(std::string_view json) {
  std::vector<std::pair<std::string, std::string>> out;
  rapidjson::Document headers;
  headers.Parse<rapidjson::kParseIterativeFlag>(json.data(), json.size());
  if (!headers.HasParseError() && headers.IsObject())
    for (const auto& h : headers.GetObject())
      if (h.value.IsString())
        out.emplace_back(std::string(h.name.GetString(), h.name.GetStringLength()),
                         std::string(h.value.GetString(), h.value.GetStringLength()));
  return out;
}

}  // namespace op::orders
