#include "inventory/adapters/product_routes.hpp"

#include <rapidjson/document.h>

#include <charconv>
#include <variant>

#include "orders/domain/order_rules.hpp"
#include "platform/http/bearer_auth.hpp"
#include "platform/http/blocking_handler.hpp"
#include "platform/json/json_body.hpp"
#include "platform/json/json_escape.hpp"

namespace op::inventory {
namespace {

using http::request_context;
using http::response;
using http::status;

constexpr std::int64_t max_stock = 1'000'000'000;

response bad(const char* field, const std::string& message) {
  return http::error_response(status::bad_request, "validation_failed", field, message);
}

std::variant<product_update, response> parse_update(const std::string& id, std::string_view body) {
  namespace rj = rapidjson;
  if (!orders::is_valid_id(id))
    return bad("productId", "productId must be 1-64 characters of letters, digits, -_.:");
  static const json::field_names read = {"name", "price", "stock", "active"};
  rj::Document typed, exact;
  if (auto refused = json::parse_object(body, typed, read))
    return http::refused_body_response(*refused);
  json::parse_object(body, exact, read, rj::kParseNumbersAsStringsFlag);
  product_update u;
  u.product_id = id;
  if (!typed.HasMember("name") || !typed["name"].IsString() || typed["name"].GetStringLength() == 0)
    return bad("name", "name is required and must be a non-empty string");
  u.name.assign(typed["name"].GetString(), typed["name"].GetStringLength());
  if (orders::character_count(u.name) > orders::max_name_length)
    return bad("name", "name must be at most 200 characters");
  if (!typed.HasMember("price") || !typed["price"].IsNumber())
    return bad("price", "price is required and must be a number");
  auto price = orders::money::parse(exact["price"].GetString());
  if (!price.value)
    return bad("price", "price " + std::string(orders::describe(price.error)));
  u.price = *price.value;
  if (!typed.HasMember("stock") || !typed["stock"].IsNumber())
    return bad("stock", "stock is required and must be a non-negative integer");
  std::string_view stock_text = exact["stock"].GetString();
  auto [end, ec] =
      std::from_chars(stock_text.data(), stock_text.data() + stock_text.size(), u.stock);
  if (ec != std::errc{} || end != stock_text.data() + stock_text.size() || u.stock < 0 ||
      u.stock > max_stock)
    return bad("stock", "stock must be an integer from 0 to 1000000000");
  if (typed.HasMember("active")) {
    if (!typed["active"].IsBool())
      return bad("active", "active must be true or false");
    u.active = typed["active"].GetBool();
  }
  return u;
}

std::string product_json(const product& p) {
  return R"({"productId":)" + json::quoted(p.product_id) + R"(,"name":)" + json::quoted(p.name) +
         R"(,"price":)" + p.price.to_string() + R"(,"active":)" + (p.active ? "true" : "false") +
         R"(,"available":)" + std::to_string(p.available) + R"(,"reserved":)" +
         std::to_string(p.reserved) + R"(,"sold":)" + std::to_string(p.sold) + "}";
}

}  // namespace

void add_product_routes(http::router& routes, const product_routes_context& context) {
  auto ctx = std::make_shared<product_routes_context>(context);

  routes.add(http::verb::put, "/api/admin/products/{id}",
             [ctx](request_context& req) -> asio::awaitable<response> {
               if (auto denied = http::require_bearer(req, ctx->admin_token))
                 co_return *denied;
               auto parsed = parse_update(req.path_params.at("id"), req.req.body());
               if (auto* error = std::get_if<response>(&parsed))
                 co_return std::move(*error);
               auto work = [ctx, update = std::get<product_update>(parsed)] {
                 return http::json_response(status::ok, product_json(ctx->products.upsert(update)));
               };
               co_return co_await http::run_blocking(ctx->blocking, work);
             });

  routes.add(http::verb::get, "/api/admin/products/{id}",
             [ctx](request_context& req) -> asio::awaitable<response> {
               if (auto denied = http::require_bearer(req, ctx->admin_token))
                 co_return *denied;
               auto id = req.path_params.at("id");
               auto work = [ctx, id] {
                 auto p = ctx->products.find(id);
                 if (!p)
                   return http::error_response(status::not_found, "not_found", "productId",
                                               "no product with id " + id);
                 return http::json_response(status::ok, product_json(*p));
               };
               co_return co_await http::run_blocking(ctx->blocking, work);
             });
}

}  // namespace op::inventory
