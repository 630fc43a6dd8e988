#include "orders/adapters/dlq_routes.hpp"

#include <charconv>

#include "platform/http/bearer_auth.hpp"
#include "platform/http/blocking_handler.hpp"
#include "platform/json/json_escape.hpp"
#include "platform/pg/hex.hpp"

namespace op::orders {
namespace {

using http::request_context;
using http::response;
using http::status;

constexpr int default_page = 50;
constexpr int max_page = 500;
constexpr int max_bulk_replay = 10000;

// Shown as a JSON string when it is text; as hex otherwise (NUL bytes included).
bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t extra = 0;
    if (c == 0)
      return false;
    if (c >= 0x80) {
      if ((c >> 5) == 0x6)
        extra = 1;
      else if ((c >> 4) == 0xe)
        extra = 2;
      else if ((c >> 3) == 0x1e)
        extra = 3;
      else
        return false;
    }
    if (i + extra >= s.size() && extra > 0)
      return false;
    for (std::size_t k = 1; k <= extra; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2)
        return false;
    i += extra + 1;
  }
  return true;
}

std::string optional_json(const std::optional<std::string>& v) {
  return v ? json::quoted(*v) : "null";
}

std::string entry_json(const dead_letter& e, bool with_payload) {
  std::string out = "{";
  out += R"("id":)" + std::to_string(e.id);
  out += R"(,"stage":)" + json::quoted(e.stage);
  out += R"(,"orderId":)" + optional_json(e.order_id);
  out += R"(,"topic":)" + json::quoted(e.topic);
  out += R"(,"partition":)" + std::to_string(e.partition);
  out += R"(,"offset":)" + std::to_string(e.offset);
  out += R"(,"key":)" + json::quoted(e.key);
  out += R"(,"errorClass":)" + json::quoted(e.error_class);
  out += R"(,"errorMessage":)" + json::quoted(e.error_message);
  out += R"(,"attempts":)" + std::to_string(e.attempts);
  out += R"(,"firstFailureAt":)" + json::quoted(e.first_failure_at);
  out += R"(,"lastFailureAt":)" + json::quoted(e.last_failure_at);
  out += R"(,"status":)" + json::quoted(e.status);
  out += R"(,"replayCount":)" + std::to_string(e.replay_count);
  out += R"(,"replayedAt":)" + optional_json(e.replayed_at);
  out += R"(,"createdAt":)" + json::quoted(e.created_at);
  if (with_payload) {
    out += R"(,"headers":)" + e.headers_json;  // stored as a JSON object
    if (valid_utf8(e.payload)) {
      out += R"(,"payload":)" + json::quoted(e.payload);
    } else {
      out += R"(,"payloadHex":")" + pg::to_hex(e.payload) + "\"";
    }
  }
  return out + "}";
}

response bad(const char* field, const std::string& message) {
  return http::error_response(status::bad_request, "validation_failed", field, message);
}

// An integer query parameter or path segment within [min, max].
std::optional<std::int64_t> parse_int(const std::string& text, std::int64_t min, std::int64_t max) {
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < min || value > max)
    return std::nullopt;
  return value;
}

response entry_not_found(std::int64_t id) {
  return http::error_response(status::not_found, "not_found", "id",
                              "no dead letter with id " + std::to_string(id));
}

// A step's name ([a-z][a-z0-9_-]*: the built-in four or a program's own) or handler:<name>
// ([a-z][a-z0-9-]*), at most 64 characters each, as the api/openapi.yaml pattern says.
bool well_formed_stage(std::string_view s) {
  bool handler = s.rfind("handler:", 0) == 0;
  if (handler)
    s.remove_prefix(8);
  if (s.empty() || s.size() > 64 || s[0] < 'a' || s[0] > 'z')
    return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || (!handler && c == '_')))
      return false;
  return true;
}

const char* const stage_rule =
    "stage must be a step's name (validate, reserve, pay, confirm, or a program's own) or "
    "handler:<name>";

}  // namespace

void add_dlq_routes(http::router& routes, const dlq_routes_context& context) {
  auto ctx = std::make_shared<dlq_routes_context>(context);

  routes.add(http::verb::get, "/api/admin/dlq",
             [ctx](request_context& req) -> asio::awaitable<response> {
               if (auto denied = http::require_bearer(req, ctx->admin_token))
                 co_return *denied;
               dead_letter_filter filter;
               filter.limit = default_page;
               if (auto stage = req.query_param("stage")) {
                 if (!well_formed_stage(*stage))
                   co_return bad("stage", stage_rule);
                 filter.stage = *stage;
               }
               if (auto s = req.query_param("status")) {
                 if (*s != "PARKED" && *s != "QUEUED" && *s != "REPLAYED")
                   co_return bad("status", "status must be one of PARKED, QUEUED, REPLAYED");
                 filter.status = *s;
               }
               if (auto after = req.query_param("after")) {
                 auto v = parse_int(*after, 0, INT64_MAX);
                 if (!v)
                   co_return bad("after", "after must be a non-negative integer entry id");
                 filter.after_id = *v;
               }
               if (auto limit = req.query_param("limit")) {
                 auto v = parse_int(*limit, 1, max_page);
                 if (!v)
                   co_return bad("limit", "limit must be an integer from 1 to 500");
                 filter.limit = static_cast<int>(*v);
               }
               auto work = [ctx, filter] {
                 auto entries = ctx->pool.with_connection([&](pqxx::connection& c) {
                   pqxx::work tx(c);
                   return ctx->dead_letters.list(tx, filter);
                 });
                 std::string body = R"({"entries":[)";
                 for (std::size_t i = 0; i < entries.size(); ++i) {
                   if (i)
                     body += ',';
                   body += entry_json(entries[i], false);
                 }
                 body += R"(],"nextAfter":)";
                 body += static_cast<int>(entries.size()) == filter.limit
                             ? std::to_string(entries.back().id)
                             : std::string("null");
                 return http::json_response(status::ok, body + "}");
               };
               co_return co_await http::run_blocking(ctx->blocking, work);
             });

  routes.add(http::verb::get, "/api/admin/dlq/{id}",
             [ctx](request_context& req) -> asio::awaitable<response> {
               if (auto denied = http::require_bearer(req, ctx->admin_token))
                 co_return *denied;
               auto id = parse_int(req.path_params.at("id"), 1, INT64_MAX);
               if (!id)
                 co_return bad("id", "id must be a positive integer entry id");
               auto work = [ctx, id = *id] {
                 auto entry = ctx->pool.with_connection([&](pqxx::connection& c) {
                   pqxx::work tx(c);
                   return ctx->dead_letters.find(tx, id);
                 });
                 if (!entry)
                   return entry_not_found(id);
                 return http::json_response(status::ok, entry_json(*entry, true));
               };
               co_return co_await http::run_blocking(ctx->blocking, work);
             });

  routes.add(http::verb::post, "/api/admin/dlq/{id}/replay",
             [ctx](request_context& req) -> asio::awaitable<response> {
               if (auto denied = http::require_bearer(req, ctx->admin_token))
                 co_return *denied;
               auto id = parse_int(req.path_params.at("id"), 1, INT64_MAX);
               if (!id)
                 co_return bad("id", "id must be a positive integer entry id");
               auto work = [ctx, id = *id] {
                 auto outcome = ctx->pool.with_connection([&](pqxx::connection& c) {
                   pqxx::work tx(c);
                   auto result = ctx->dead_letters.replay(tx, id);
                   tx.commit();
                   return result;
                 });
                 if (outcome == replay_outcome::not_found)
                   return entry_not_found(id);
                 return http::json_response(
                     status::ok,
                     R"({"id":)" + std::to_string(id) + R"(,"status":"REPLAYED","replayed":)" +
                         (outcome == replay_outcome::replayed ? "true" : "false") + "}");
               };
               co_return co_await http::run_blocking(ctx->blocking, work);
             });

  routes.add(http::verb::post, "/api/admin/dlq/replay",
             [ctx](request_context& req) -> asio::awaitable<response> {
               if (auto denied = http::require_bearer(req, ctx->admin_token))
                 co_return *denied;
               std::optional<std::string> stage;
               if (auto s = req.query_param("stage")) {
                 if (!well_formed_stage(*s))
                   co_return bad("stage", stage_rule);
                 stage = *s;
               }
               int limit = 1000;
               if (auto l = req.query_param("limit")) {
                 auto v = parse_int(*l, 1, max_bulk_replay);
                 if (!v)
                   co_return bad("limit", "limit must be an integer from 1 to 10000");
                 limit = static_cast<int>(*v);
               }
               auto work = [ctx, stage, limit] {
                 auto queued = ctx->pool.with_connection([&](pqxx::connection& c) {
                   pqxx::work tx(c);
                   auto n = ctx->dead_letters.queue_replay(tx, stage, limit);
                   tx.commit();
                   return n;
                 });
                 return http::json_response(status::accepted,
                                            R"({"queued":)" + std::to_string(queued) +
                                                R"(,"ratePerSecond":)" +
                                                std::to_string(ctx->replay_rate) + "}");
               };
               co_return co_await http::run_blocking(ctx->blocking, work);
             });
}

}  // namespace op::orders
