#include "orders/adapters/order_json.hpp"

#include <rapidjson/document.h>

#include <charconv>

#include "platform/json/json_escape.hpp"

namespace op::orders {
namespace {

namespace rj = rapidjson;

// The body is parsed twice: `typed` tells strings from numbers, `exact` (numbers kept as
// their decimal text) gives amounts without passing through double.
struct field_reader {
  const rj::Value& typed;
  const rj::Value& exact;
  std::string prefix;
  std::vector<violation>& errors;

  std::string path(const char* name) const { return prefix + name; }

  const rj::Value* typed_member(const char* name) const {
    auto it = typed.FindMember(name);
    if (it == typed.MemberEnd() || it->value.IsNull())
      return nullptr;
    return &it->value;
  }
  std::string_view exact_text(const char* name) const {
    const auto& v = exact[name];
    return {v.GetString(), v.GetStringLength()};
  }

  std::string text(const char* name, bool required) {
    const auto* v = typed_member(name);
    if (!v) {
      if (required)
        errors.push_back({path(name), "is required"});
      return {};
    }
    if (!v->IsString()) {
      errors.push_back({path(name), "must be a string"});
      return {};
    }
    std::string out(v->GetString(), v->GetStringLength());
    // RapidJSON decodes the escape of a low surrogate that follows no high one into bytes
    // that are not UTF-8, which no text column takes.
    if (!json::is_valid_utf8(out)) {
      errors.push_back({path(name), "must be valid Unicode text"});
      return {};
    }
    return out;
  }

  money amount(const char* name) {
    const auto* v = typed_member(name);
    if (!v) {
      errors.push_back({path(name), "is required"});
      return {};
    }
    if (!v->IsNumber()) {
      errors.push_back({path(name), "must be a number"});
      return {};
    }
    auto parsed = money::parse(exact_text(name));
    if (!parsed.value) {
      errors.push_back({path(name), std::string(describe(parsed.error))});
      return {};
    }
    return *parsed.value;
  }

  std::int64_t whole_number(const char* name) {
    const auto* v = typed_member(name);
    if (!v) {
      errors.push_back({path(name), "is required"});
      return 0;
    }
    // Only a number has exact text: anything else (true, {}, []) is refused before reading it.
    auto text = v->IsNumber() ? exact_text(name) : std::string_view();
    std::int64_t out = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    if (!v->IsNumber() || ec != std::errc{} || end != text.data() + text.size()) {
      errors.push_back({path(name), "must be a positive integer"});
      return 0;
    }
    return out;
  }
};

void write_item(std::string& out, const order_item& item) {
  out += R"({"productId":)" + json::quoted(item.product_id);
  out += R"(,"productName":)" + json::quoted(item.product_name);
  out += R"(,"quantity":)" + std::to_string(item.quantity);
  out += R"(,"price":)" + item.price.to_string() + "}";
}

void write_order(std::string& out, const order_view& o) {
  out += R"({"orderId":)" + json::quoted(o.order_id);
  out += R"(,"customerId":)" + json::quoted(o.customer_id);
  if (!o.customer_email.empty())
    out += R"(,"customerEmail":)" + json::quoted(o.customer_email);
  if (!o.shipping_address.empty())
    out += R"(,"shippingAddress":)" + json::quoted(o.shipping_address);
  out += R"(,"paymentMethod":)" + json::quoted(o.payment_method);
  out += R"(,"status":)" + json::quoted(o.status);
  if (!o.cancel_reason.empty()) {
    out += R"(,"reason":)" + json::quoted(o.cancel_reason);
    out += R"(,"reasonDetail":)" + json::quoted(o.cancel_detail);
  }
  out += R"(,"totalAmount":)" + o.total_amount.to_string();
  out += R"(,"items":[)";
  for (std::size_t i = 0; i < o.items.size(); ++i) {
    if (i)
      out += ',';
    write_item(out, o.items[i]);
  }
  out += R"(],"createdAt":)" + json::quoted(o.created_at);
  out += R"(,"updatedAt":)" + json::quoted(o.updated_at) + "}";
}

}  // namespace

draft_parse_result parse_order_draft(std::string_view body) {
  draft_parse_result result;
  static const json::field_names read = {
      "customerId", "customerEmail", "shippingAddress", "paymentMethod", "totalAmount",
      "items",      "productId",     "productName",     "quantity",      "price"};
  rj::Document typed, exact;
  if ((result.refused = json::parse_object(body, typed, read)))
    return result;
  json::parse_object(body, exact, read, rj::kParseNumbersAsStringsFlag);

  auto& errors = result.errors;
  field_reader top{typed, exact, "", errors};
  order_draft draft;
  draft.customer_id = top.text("customerId", true);
  draft.customer_email = top.text("customerEmail", false);
  draft.shipping_address = top.text("shippingAddress", false);
  draft.payment_method = top.text("paymentMethod", false);
  draft.total_amount = top.amount("totalAmount");

  auto items = typed.FindMember("items");
  if (items == typed.MemberEnd() || items->value.IsNull()) {
    errors.push_back({"items", "is required"});
  } else if (!items->value.IsArray()) {
    errors.push_back({"items", "must be an array"});
  } else {
    const auto& exact_items = exact["items"];
    for (rj::SizeType i = 0; i < items->value.Size(); ++i) {
      std::string prefix = "items[" + std::to_string(i) + "].";
      if (!items->value[i].IsObject()) {
        errors.push_back({"items[" + std::to_string(i) + "]", "must be an object"});
        continue;
      }
      field_reader item_reader{items->value[i], exact_items[i], prefix, errors};
      order_item item;
      item.product_id = item_reader.text("productId", true);
      item.product_name = item_reader.text("productName", false);
      item.quantity = item_reader.whole_number("quantity");
      item.price = item_reader.amount("price");
      draft.items.push_back(std::move(item));
    }
  }
  if (errors.empty())
    result.draft = std::move(draft);
  return result;
}

std::string order_json(const order_view& order) {
  std::string out;
  out.reserve(512);
  write_order(out, order);
  return out;
}

std::string order_list_json(const std::vector<order_view>& orders) {
  std::string out = R"({"orders":[)";
  for (std::size_t i = 0; i < orders.size(); ++i) {
    if (i)
      out += ',';
    write_order(out, orders[i]);
  }
  out += R"(],"count":)" + std::to_string(orders.size()) + "}";
  return out;
}

std::string history_json(const std::string& order_id, const std::vector<order_event_view>& events) {
  std::string out = R"({"orderId":)" + json::quoted(order_id) + R"(,"events":[)";
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto& e = events[i];
    if (i)
      out += ',';
    out += R"({"seq":)" + std::to_string(e.seq) + R"(,"status":)" + json::quoted(e.status);
    if (!e.reason.empty())
      out += R"(,"reason":)" + json::quoted(e.reason);
    if (!e.detail.empty())
      out += R"(,"detail":)" + json::quoted(e.detail);
    out += R"(,"at":)" + json::quoted(e.at) + "}";
  }
  return out + "]}";
}

std::string status_counts_json(const std::vector<status_count>& counts) {
  std::string out = "[";
  for (std::size_t i = 0; i < counts.size(); ++i) {
    if (i)
      out += ',';
    out += R"({"status":)" + json::quoted(counts[i].status) + R"(,"count":)" +
           std::to_string(counts[i].count) + "}";
  }
  return out + "]";
}

std::string placement_json(const std::string& order_id, std::string_view status) {
  return R"({"message":)" + json::quoted("Order placed successfully. Order ID: " + order_id) +
         R"(,"orderId":)" + json::quoted(order_id) + R"(,"status":)" + json::quoted(status) + "}";
}

}  // namespace op::orders
