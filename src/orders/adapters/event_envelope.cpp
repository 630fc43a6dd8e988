#include "orders/adapters/event_envelope.hpp"

#include <rapidjson/document.h>

#include <cctype>

namespace op::orders {

std::optional<event_envelope> decode_event_envelope(std::string_view value) {
  rapidjson::Document doc;
  doc.Parse(value.data(), value.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("eventId") ||
      !doc["eventId"].IsString() || !doc.HasMember("orderId") || !doc["orderId"].IsString())
    return std::nullopt;
  event_envelope fields{doc["eventId"].GetString(), doc["orderId"].GetString()};
  // The event id goes into a uuid column: anything else would fail the step for ever.
  static const std::string uuid_shape = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
  if (fields.event_id.size() != uuid_shape.size() || fields.order_id.empty() ||
      fields.order_id.size() > 64)
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
  headers.Parse(json.data(), json.size());
  if (!headers.HasParseError() && headers.IsObject())
    for (const auto& h : headers.GetObject())
      if (h.value.IsString())
        out.emplace_back(h.name.GetString(), h.value.GetString());
  return out;
}

}  // namespace op::orders
