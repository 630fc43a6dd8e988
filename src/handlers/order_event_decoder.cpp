#include "handlers/order_event_decoder.hpp"

#include <rapidjson/document.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>

#include "orders/adapters/event_envelope.hpp"
#include "orders/domain/money.hpp"
#include "platform/json/json_body.hpp"
#include "platform/json/json_escape.hpp"

namespace op::handlers {
namespace {

namespace rj = rapidjson;
using order_pipeline::order_event;
using order_pipeline::outcome;

// The members read below, at any level: each must appear once and hold no U+0000.
const json::field_names read_fields = {"eventId",      "eventType",   "orderId", "occurredAt",
                                       "payload",      "customerId",  "status",  "reason",
                                       "reasonDetail", "totalAmount", "items",   "productId",
                                       "productName",  "quantity",    "price"};

// Writes the top-level "payload" member again while the envelope is read event by event, so
// numbers keep their text (no trip through double) and no nesting costs stack.
class payload_copier : public rj::BaseReaderHandler<rj::UTF8<>, payload_copier> {
 public:
  std::string text() const { return {buffer_.GetString(), buffer_.GetSize()}; }
  bool copied() const { return copied_; }

  bool Null() {
    return scalar([&] { return writer_.Null(); });
  }
  bool Bool(bool b) {
    return scalar([&] { return writer_.Bool(b); });
  }
  // RapidJSON 1.1's Writer::RawNumber quotes the number; RawValue writes it as it is.
  bool RawNumber(const char* s, rj::SizeType length, bool) {
    return scalar([&] { return writer_.RawValue(s, length, rj::kNumberType); });
  }
  bool String(const char* s, rj::SizeType length, bool copy) {
    return scalar([&] { return writer_.String(s, length, copy); });
  }
  bool Key(const char* s, rj::SizeType length, bool copy) {
    if (copying_)
      return writer_.Key(s, length, copy);
    next_is_payload_ = depth_ == 1 && std::string_view(s, length) == "payload";
    return true;
  }
  bool StartObject() {
    return open([&] { return writer_.StartObject(); });
  }
  bool EndObject(rj::SizeType members) {
    return close([&] { return writer_.EndObject(members); });
  }
  bool StartArray() {
    return open([&] { return writer_.StartArray(); });
  }
  bool EndArray(rj::SizeType elements) {
    return close([&] { return writer_.EndArray(elements); });
  }

 private:
  template <class Write>
  bool scalar(Write write) {
    next_is_payload_ = false;
    return !copying_ || write();
  }
  template <class Write>
  bool open(Write write) {
    ++depth_;
    if (!copying_ && next_is_payload_) {
      copying_ = true;
      payload_depth_ = depth_;
    }
    next_is_payload_ = false;
    return !copying_ || write();
  }
  template <class Write>
  bool close(Write write) {
    bool ok = true;
    if (copying_) {
      ok = write();
      if (depth_ == payload_depth_) {
        copying_ = false;
        copied_ = true;
      }
    }
    --depth_;
    return ok;
  }

  rj::StringBuffer buffer_;
  rj::Writer<rj::StringBuffer> writer_{buffer_};
  int depth_ = 0;
  int payload_depth_ = 0;
  bool next_is_payload_ = false;
  bool copying_ = false;
  bool copied_ = false;
};

std::optional<std::string> copy_payload(std::string_view value) {
  payload_copier copier;
  rj::MemoryStream stream(value.data(), value.size());
  rj::Reader reader;
  if (!reader.Parse<rj::kParseIterativeFlag | rj::kParseNumbersAsStringsFlag |
                    rj::kParseValidateEncodingFlag>(stream, copier) ||
      !copier.copied())
    return std::nullopt;
  return copier.text();
}

// The member `name` of `object` as text; nullopt when it is missing or not a string (or is
// not valid Unicode, which RapidJSON lets through for a lone low surrogate's escape).
std::optional<std::string> text_of(const rj::Value& object, const char* name) {
  auto it = object.FindMember(name);
  if (it == object.MemberEnd() || !it->value.IsString())
    return std::nullopt;
  std::string out(it->value.GetString(), it->value.GetStringLength());
  if (!json::is_valid_utf8(out))
    return std::nullopt;
  return out;
}

// Absent and null are the same as empty; anything else but a string is refused.
bool optional_text(const rj::Value& object, const char* name, std::string& out) {
  auto it = object.FindMember(name);
  if (it == object.MemberEnd() || it->value.IsNull())
    return true;
  auto text = text_of(object, name);
  if (!text)
    return false;
  out = std::move(*text);
  return true;
}

// A JSON number (in `typed`) whose decimal text (in `exact`) is exact money.
std::optional<orders::money> money_of(const rj::Value& typed, const rj::Value& exact,
                                      const char* name) {
  auto it = typed.FindMember(name);
  if (it == typed.MemberEnd() || !it->value.IsNumber())
    return std::nullopt;
  const auto& text = exact[name];
  return orders::money::parse({text.GetString(), text.GetStringLength()}).value;
}

std::optional<std::int64_t> positive_integer_of(const rj::Value& typed, const rj::Value& exact,
                                                const char* name) {
  auto it = typed.FindMember(name);
  if (it == typed.MemberEnd() || !it->value.IsNumber())
    return std::nullopt;
  const auto& text = exact[name];
  const char* end = text.GetString() + text.GetStringLength();
  std::int64_t out = 0;
  auto [stop, error] = std::from_chars(text.GetString(), end, out);
  if (error != std::errc{} || stop != end || out < 1)
    return std::nullopt;
  return out;
}

std::optional<outcome> outcome_of(std::string_view status) {
  if (status == "CONFIRMED")
    return outcome::confirmed;
  if (status == "CANCELLED")
    return outcome::cancelled;
  if (status == "FAILED")
    return outcome::failed;
  return std::nullopt;
}

}  // namespace

std::optional<order_event> decode_order_event(std::string_view value) {
  auto envelope = orders::decode_event_envelope(value);
  if (!envelope)
    return std::nullopt;
  // Parsed twice, as the orders API reads a placement: `typed` tells numbers from strings,
  // `exact` keeps each number's decimal text.
  rj::Document typed, exact;
  if (json::parse_object(value, typed, read_fields) ||
      json::parse_object(value, exact, read_fields, rj::kParseNumbersAsStringsFlag))
    return std::nullopt;
  auto payload = typed.FindMember("payload");
  if (payload == typed.MemberEnd() || !payload->value.IsObject())
    return std::nullopt;
  const auto& order = payload->value;
  const auto& exact_order = exact["payload"];

  order_event event;
  event.event_id = std::move(envelope->event_id);
  event.order_id = std::move(envelope->order_id);
  auto event_type = text_of(typed, "eventType");
  auto customer_id = text_of(order, "customerId");
  auto status = text_of(order, "status");
  if (!event_type || !customer_id || customer_id->empty() || !status ||
      !optional_text(typed, "occurredAt", event.occurred_at) ||
      !optional_text(order, "reason", event.reason) ||
      !optional_text(order, "reasonDetail", event.detail))
    return std::nullopt;
  // The order inside must be the one the envelope (and the message key) names.
  if (order.HasMember("orderId") && text_of(order, "orderId") != event.order_id)
    return std::nullopt;
  auto result = outcome_of(*status);
  auto total = money_of(order, exact_order, "totalAmount");
  if (!result || !total)
    return std::nullopt;
  event.event_type = std::move(*event_type);
  event.customer_id = std::move(*customer_id);
  event.status = std::move(*status);
  event.result = *result;
  event.total_cents = total->cents();
  event.total_amount = total->to_string();

  auto items = order.FindMember("items");
  if (items == order.MemberEnd() || !items->value.IsArray())
    return std::nullopt;
  const auto& exact_items = exact_order["items"];
  for (rj::SizeType i = 0; i < items->value.Size(); ++i) {
    const auto& item = items->value[i];
    if (!item.IsObject())
      return std::nullopt;
    order_pipeline::order_line line;
    auto product_id = text_of(item, "productId");
    auto quantity = positive_integer_of(item, exact_items[i], "quantity");
    auto price = money_of(item, exact_items[i], "price");
    if (!product_id || product_id->empty() || !quantity || !price ||
        !optional_text(item, "productName", line.product_name))
      return std::nullopt;
    line.product_id = std::move(*product_id);
    line.quantity = *quantity;
    line.price_cents = price->cents();
    event.items.push_back(std::move(line));
  }

  auto payload_json = copy_payload(value);
  if (!payload_json)
    return std::nullopt;
  event.payload_json = std::move(*payload_json);
  return event;
}

}  // namespace op::handlers
