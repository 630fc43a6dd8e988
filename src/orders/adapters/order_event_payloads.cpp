#include "orders/adapters/order_event_payloads.hpp"

#include <rapidjson/document.h>

#include <map>
#include <stdexcept>

#include "orders/adapters/order_json.hpp"
#include "orders/adapters/pg_order_repository.hpp"
#include "platform/json/json_escape.hpp"
#include "platform/pg/array.hpp"

namespace op::orders {

outbox::rendered_payload order_payload_reference(const order_view& order) {
  std::string input = R"({"status":)" + json::quoted(order.status);
  input += R"(,"cancelReason":)" + json::quoted(order.cancel_reason);
  input += R"(,"cancelDetail":)" + json::quoted(order.cancel_detail);
  input += R"(,"updatedAt":)" + json::quoted(order.updated_at) + "}";
  return {order_payload_renderer, std::move(input)};
}

namespace {

std::string string_member(const rapidjson::Value& object, const char* name) {
  auto member = object.FindMember(name);
  if (member == object.MemberEnd() || !member->value.IsString())
    throw std::runtime_error(std::string("an order event's stored fields lack ") + name);
  return {member->value.GetString(), member->value.GetStringLength()};
}

}  // namespace

std::vector<std::string> render_order_payloads(
    pqxx::work& tx, const std::vector<outbox::render_request>& requests) {
  std::vector<std::string_view> ids;
  ids.reserve(requests.size());
  for (const auto& request : requests)
    ids.push_back(request.key);
  std::map<std::string, order_view, std::less<>> orders;
  for (const auto& r :
       tx.exec_params("SELECT " + order_select_list +
                          ", i.product_id, coalesce(i.product_name, ''), i.quantity,"
                          " i.price_cents FROM orders o" +
                          order_lines_join_sql("o") +
                          " WHERE o.order_id = ANY($1::text[]) ORDER BY o.order_id, i.line_no",
                      pg::text_array(ids))) {
    auto [at, inserted] = orders.try_emplace(r[0].as<std::string>());
    if (inserted)
      at->second = read_order_columns(r);
    if (!r[11].is_null())
      at->second.items.push_back(read_item_columns(r, 11));
  }
  std::vector<std::string> payloads;
  payloads.reserve(requests.size());
  for (const auto& request : requests) {
    auto found = orders.find(request.key);
    if (found == orders.end())
      throw std::runtime_error("the order of an outbox event is gone: " + request.key);
    rapidjson::Document fields;
    fields.Parse(request.input.data(), request.input.size());
    if (fields.HasParseError() || !fields.IsObject())
      throw std::runtime_error("an order event's stored fields are not a JSON object: " +
                               request.key);
    auto order = found->second;
    order.status = string_member(fields, "status");
    order.cancel_reason = string_member(fields, "cancelReason");
    order.cancel_detail = string_member(fields, "cancelDetail");
    order.updated_at = string_member(fields, "updatedAt");
    payloads.push_back(order_json(order));
  }
  return payloads;
}

}  // namespace op::orders
