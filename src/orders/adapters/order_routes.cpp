#include "orders/adapters/order_routes.hpp"

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <utility>
#include <variant>

#include "orders/adapters/order_json.hpp"
#include "orders/app/place_order.hpp"
#include "platform/http/bearer_auth.hpp"
#include "platform/http/blocking_handler.hpp"
#include "platform/json/json_body.hpp"
#include "platform/json/json_escape.hpp"
#include "platform/log/logging.hpp"
#include "platform/log/trace_context.hpp"
#include "platform/metrics/registry.hpp"

namespace op::orders {
namespace {

using http::request_context;
using http::response;
using http::status;

constexpr std::size_t max_idempotency_key_length = 255;
constexpr int default_list_limit = 50;
constexpr int max_list_limit = 200;
constexpr int default_wait_ms = 10000;
constexpr int max_wait_ms = 30000;

class json_presenter final : public order_presenter {
 public:
  std::string accepted_response(const std::string& order_id) const override {
    return placement_json(order_id, "PLACED");
  }
};

// FNV-1a over the body: tells "same request again" from "same key, other request".
std::string fingerprint(std::string_view body) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : body) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return fmt::format("{:016x}-{}", h, body.size());
}

response validation_error(const std::vector<violation>& violations) {
  const auto& first = violations.front();
  std::string body = R"({"error":"validation_failed","field":)" + json::quoted(first.field) +
                     R"(,"message":)" + json::quoted(first.field + " " + first.rule) +
                     R"(,"violations":[)";
  for (std::size_t i = 0; i < violations.size(); ++i) {
    if (i)
      body += ',';
    body += R"({"field":)" + json::quoted(violations[i].field) + R"(,"rule":)" +
            json::quoted(violations[i].rule) + "}";
  }
  body += "]}";
  return http::json_response(status::bad_request, std::move(body));
}

response order_not_found(const std::string& id) {
  return http::error_response(status::not_found, "not_found", "orderId", "no order with id " + id);
}

bool known_status(std::string_view s) {
  for (auto name : {"PLACED", "VALIDATED", "INVENTORY_RESERVED", "PAYMENT_PROCESSED", "CONFIRMED",
                    "CANCELLED", "FAILED"})
    if (s == name)
      return true;
  return false;
}

// Reads {"email","name","active"} for PUT /api/admin/customers/{id}.
std::variant<customer, response> parse_customer(const std::string& id, std::string_view body) {
  namespace rj = rapidjson;
  auto bad = [](const char* field, std::string message) {
    return http::error_response(status::bad_request, "validation_failed", field, message);
  };
  if (!is_valid_id(id))
    return bad("customerId", "customerId must be 1-64 characters of letters, digits, -_.:");
  static const json::field_names read = {"email", "name", "active"};
  rj::Document doc;
  if (auto refused = json::parse_object(body, doc, read))
    return http::refused_body_response(*refused);
  customer c;
  c.customer_id = id;
  if (!doc.HasMember("email") || !doc["email"].IsString())
    return bad("email", "email is required and must be a string");
  c.email.assign(doc["email"].GetString(), doc["email"].GetStringLength());
  if (!looks_like_email(c.email))
    return bad("email", "email must be an email address");
  if (doc.HasMember("name")) {
    if (!doc["name"].IsString())
      return bad("name", "name must be a string");
    c.name.assign(doc["name"].GetString(), doc["name"].GetStringLength());
    if (character_count(c.name) > max_name_length)
      return bad("name", "name must be at most 200 characters");
  }
  if (doc.HasMember("active")) {
    if (!doc["active"].IsBool())
      return bad("active", "active must be true or false");
    c.active = doc["active"].GetBool();
  }
  return c;
}

std::string customer_json(const customer& c) {
  return R"({"customerId":)" + json::quoted(c.customer_id) + R"(,"email":)" +
         json::quoted(c.email) + R"(,"name":)" + json::quoted(c.name) + R"(,"active":)" +
         (c.active ? "true" : "false") + "}";
}

// Reads a query parameter as an integer from `min` to `max`; nullopt when it is anything else.
std::optional<int> bounded_integer(std::string_view text, int min, int max) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < min || value > max)
    return std::nullopt;
  return value;
}

// How long GET /api/orders/{id} may wait for the order's final state: nullopt without
// waitFor, or the 400 naming the parameter.
std::variant<std::optional<std::chrono::milliseconds>, response> wait_of(
    const request_context& req) {
  std::optional<int> timeout = default_wait_ms;
  if (auto text = req.query_param("timeoutMs")) {
    timeout = bounded_integer(*text, 0, max_wait_ms);
    if (!timeout)
      return http::error_response(status::bad_request, "validation_failed", "timeoutMs",
                                  "timeoutMs must be an integer from 0 to 30000");
  }
  auto wait_for = req.query_param("waitFor");
  if (!wait_for)
    return std::nullopt;
  if (*wait_for != "final")
    return http::error_response(status::bad_request, "validation_failed", "waitFor",
                                "waitFor must be final");
  return std::chrono::milliseconds(*timeout);
}

bool is_final_status(std::string_view s) {
  return s == "CONFIRMED" || s == "CANCELLED" || s == "FAILED";
}

const char* outcome_name(cancellation::kind outcome) {
  switch (outcome) {
    case cancellation::kind::cancelled:
      return "cancelled";
    case cancellation::kind::refunding:
      return "refunding";
    case cancellation::kind::conflict:
      return "conflict";
    case cancellation::kind::not_found:
      break;
  }
  return "not_found";
}

metrics::counter& cancel_requests(cancellation::kind outcome) {
  return metrics::global().get_counter("orders_cancel_requests_total",
                                       "POST /api/orders/{id}/cancel requests, by outcome.",
                                       {{"outcome", outcome_name(outcome)}});
}

response not_cancellable(const std::string& id, const std::string& current) {
  return http::json_response(
      status::conflict,
      R"({"error":"order_not_cancellable","field":"orderId","message":)" +
          json::quoted("order " + id + " is " + current +
                       ": only an order that is not confirmed or ended yet can be cancelled") +
          R"(,"status":)" + json::quoted(current) + "}");
}

// Admission control of POST /api/orders: past the limit of placements in progress, an order
// is refused at once with 503 rather than queued behind the others until its client gives up.
class placement_admission {
 public:
  explicit placement_admission(std::size_t limit) : limit_(limit) {
    refused();  // the series exists (at zero) before the first refusal
  }

  std::size_t in_progress() const { return in_progress_.load(); }

  // Holds one place while alive; empty when the limit is reached.
  class ticket {
   public:
    explicit ticket(std::atomic<std::size_t>* counter) : counter_(counter) {}
    ticket(ticket&& other) noexcept : counter_(std::exchange(other.counter_, nullptr)) {}
    ticket& operator=(ticket&&) = delete;
    ~ticket() {
      if (counter_)
        counter_->fetch_sub(1);
    }
    explicit operator bool() const { return counter_ != nullptr; }

   private:
    std::atomic<std::size_t>* counter_;
  };

  ticket enter() {
    if (in_progress_.fetch_add(1) >= limit_ && limit_ > 0) {
      in_progress_.fetch_sub(1);
      refused().inc();
      return ticket(nullptr);
    }
    return ticket(&in_progress_);
  }

 private:
  static metrics::counter& refused() {
    static auto& counter = metrics::global().get_counter(
        "orders_refused_overloaded_total",
        "POST /api/orders answered 503 overloaded: server.max-pending-orders were in progress.");
    return counter;
  }

  std::size_t limit_;
  std::atomic<std::size_t> in_progress_{0};
};

}  // namespace

void add_order_routes(http::router& routes, const order_routes_context& context) {
  auto ctx = std::make_shared<order_routes_context>(context);
  auto admission = std::make_shared<placement_admission>(context.max_pending_orders);
  metrics::global().add_callback(
      "orders_placements_in_progress",
      "POST /api/orders taken and not answered yet (server.max-pending-orders at most).", {},
      [admission] { return static_cast<double>(admission->in_progress()); });
  // Registered at start so the series exists (at zero) before the first order.
  metrics::global().get_counter("orders_placed_total", "Orders accepted by POST /api/orders.");
  for (auto outcome : {cancellation::kind::cancelled, cancellation::kind::refunding,
                       cancellation::kind::conflict, cancellation::kind::not_found})
    cancel_requests(outcome);
  metrics::global().add_callback(
      "orders_waiting_requests",
      "Requests waiting for an order's final state (GET /api/orders/{id}?waitFor=final).", {},
      [ctx] { return static_cast<double>(ctx->waiters.size()); });

  routes.add(http::verb::post, "/api/orders",
             [ctx, admission](request_context& req) -> asio::awaitable<response> {
               const std::string& body = req.req.body();
               std::optional<idempotency> key;
               if (auto header = req.header("Idempotency-Key"); !header.empty()) {
                 if (header.size() > max_idempotency_key_length)
                   co_return http::error_response(status::bad_request, "validation_failed",
                                                  "Idempotency-Key",
                                                  "Idempotency-Key must be at most 255 characters");
                 key = idempotency{std::string(header), fingerprint(body)};
               }
               auto parsed = parse_order_draft(body);
               if (parsed.refused)
                 co_return http::refused_body_response(*parsed.refused);
               if (!parsed.draft)
                 co_return validation_error(parsed.errors);
               auto violations = check(*parsed.draft, ctx->limits);
               if (!violations.empty())
                 co_return validation_error(violations);
               auto place = admission->enter();
               if (!place)
                 co_return http::retry_later_response(
                     "overloaded", std::nullopt,
                     "server.max-pending-orders orders are being placed already; retry after "
                     "Retry-After seconds");

               // Join the caller's trace when it sends a valid traceparent, else start one.
               auto trace_id =
                   log::trace_id_of(req.header("traceparent")).value_or(log::new_trace_id());
               auto work = [ctx, draft = std::move(*parsed.draft), key, trace_id]() mutable {
                 static const json_presenter presenter;
                 auto result = place_order(ctx->orders, presenter, ctx->limits, std::move(draft),
                                           key, trace_id);
                 if (result.outcome == place_order_result::kind::accepted) {
                   log::scoped_context logged(result.order_id, trace_id);
                   log::get("orders")->debug("order placed");
                 }
                 switch (result.outcome) {
                   case place_order_result::kind::invalid:
                     return validation_error(result.violations);
                   case place_order_result::kind::idempotency_key_reused:
                     return http::error_response(
                         status::unprocessable_entity, "idempotency_key_reused", "Idempotency-Key",
                         "this Idempotency-Key was used for a different request (order " +
                             result.order_id + ")");
                   case place_order_result::kind::replayed: {
                     auto res = http::json_response(status::ok, result.response_body);
                     res.set("Idempotent-Replayed", "true");
                     return res;
                   }
                   case place_order_result::kind::accepted:
                     static auto& placed = metrics::global().get_counter(
                         "orders_placed_total", "Orders accepted by POST /api/orders.");
                     placed.inc();
                     break;
                 }
                 return http::json_response(status::ok, result.response_body);
               };
               co_return co_await http::run_blocking(ctx->blocking, work);
             });

  routes.add(http::verb::get, "/api/orders/{id}",
             [ctx](request_context& req) -> asio::awaitable<response> {
               auto id = req.path_params.at("id");
               auto wait = wait_of(req);
               if (auto* refused = std::get_if<response>(&wait))
                 co_return std::move(*refused);
               auto timeout = std::get<std::optional<std::chrono::milliseconds>>(wait);
               bool final = false;
               auto work = [ctx, id, &final] {
                 auto order = ctx->orders.find(id);
                 if (!order)
                   return order_not_found(id);
                 final = is_final_status(order->status);
                 return http::json_response(status::ok, order_json(*order));
               };
               if (!timeout)
                 co_return co_await http::run_blocking(ctx->blocking, work);

               // Enlisted before the first read, so an outcome that lands in between still wakes
               // this request; the wait holds a timer, not a thread.
               auto deadline = std::chrono::steady_clock::now() + *timeout;
               auto ticket = ctx->waiters.enlist(id, co_await asio::this_coro::executor);
               if (!ticket && !ctx->waiters.draining())
                 co_return http::retry_later_response(
                     "too_many_waiting_requests", "waitFor",
                     "server.max-waiting-requests requests wait already; retry shortly or read the "
                     "order without waitFor");
               for (;;) {
                 auto res = co_await http::run_blocking(ctx->blocking, work);
                 if (res.result() != status::ok)
                   co_return res;
                 if (final || !ticket || ctx->waiters.draining() ||
                     std::chrono::steady_clock::now() >= deadline) {
                   // Not final: the timeout passed, or the server is shutting down.
                   res.set("Wait-Timed-Out", final ? "false" : "true");
                   co_return res;
                 }
                 co_await ticket->wait_until(deadline);
               }
             });

  routes.add(http::verb::post, "/api/orders/{id}/cancel",
             [ctx](request_context& req) -> asio::awaitable<response> {
               auto id = req.path_params.at("id");
               auto work = [ctx, id] {
                 auto outcome = ctx->cancellation.cancel(id);
                 cancel_requests(outcome.outcome).inc();
                 switch (outcome.outcome) {
                   case cancellation::kind::not_found:
                     return order_not_found(id);
                   case cancellation::kind::conflict:
                     return not_cancellable(id, outcome.status);
                   case cancellation::kind::cancelled:
                   case cancellation::kind::refunding:
                     break;
                 }
                 auto order = ctx->orders.find(id);
                 if (!order)
                   return order_not_found(id);
                 // 202: the order is CANCELLED, but the money goes back asynchronously.
                 return http::json_response(outcome.outcome == cancellation::kind::refunding
                                                ? status::accepted
                                                : status::ok,
                                            order_json(*order));
               };
               co_return co_await http::run_blocking(ctx->blocking, work);
             });

  routes.add(http::verb::get, "/api/orders/{id}/events",
             [ctx](request_context& req) -> asio::awaitable<response> {
               auto id = req.path_params.at("id");
               auto work = [ctx, id] {
                 auto events = ctx->orders.history(id);
                 if (!events)
                   return order_not_found(id);
                 return http::json_response(status::ok, history_json(id, *events));
               };
               co_return co_await http::run_blocking(ctx->blocking, work);
             });

  routes.add(
      http::verb::get, "/api/orders", [ctx](request_context& req) -> asio::awaitable<response> {
        order_filter filter;
        filter.customer_id = req.query_param("customerId");
        filter.status = req.query_param("status");
        filter.limit = default_list_limit;
        if (filter.customer_id && !is_valid_id(*filter.customer_id))
          co_return http::error_response(
              status::bad_request, "validation_failed", "customerId",
              "customerId must be 1-64 characters of letters, digits, -_.:");
        if (filter.status && !known_status(*filter.status))
          co_return http::error_response(
              status::bad_request, "validation_failed", "status",
              "status must be one of PLACED, VALIDATED, INVENTORY_RESERVED, "
              "PAYMENT_PROCESSED, CONFIRMED, CANCELLED, FAILED");
        if (auto limit = req.query_param("limit")) {
          int value = 0;
          auto [end, ec] = std::from_chars(limit->data(), limit->data() + limit->size(), value);
          if (ec != std::errc{} || end != limit->data() + limit->size() || value < 1 ||
              value > max_list_limit)
            co_return http::error_response(status::bad_request, "validation_failed", "limit",
                                           "limit must be an integer from 1 to 200");
          filter.limit = value;
        }
        auto work = [ctx, filter] {
          return http::json_response(status::ok, order_list_json(ctx->orders.list(filter)));
        };
        co_return co_await http::run_blocking(ctx->blocking, work);
      });

  routes.add(http::verb::get, "/api/admin/metrics",
             [ctx](request_context& req) -> asio::awaitable<response> {
               if (auto denied = http::require_bearer(req, ctx->admin_token))
                 co_return *denied;
               auto work = [ctx] {
                 return http::json_response(status::ok,
                                            status_counts_json(ctx->orders.count_by_status()));
               };
               co_return co_await http::run_blocking(ctx->blocking, work);
             });

  routes.add(http::verb::put, "/api/admin/customers/{id}",
             [ctx](request_context& req) -> asio::awaitable<response> {
               if (auto denied = http::require_bearer(req, ctx->admin_token))
                 co_return *denied;
               auto parsed = parse_customer(req.path_params.at("id"), req.req.body());
               if (auto* error = std::get_if<response>(&parsed))
                 co_return std::move(*error);
               auto work = [ctx, c = std::get<customer>(parsed)] {
                 return http::json_response(status::ok, customer_json(ctx->customers.upsert(c)));
               };
               co_return co_await http::run_blocking(ctx->blocking, work);
             });

  routes.add(http::verb::get, "/api/admin/customers/{id}",
             [ctx](request_context& req) -> asio::awaitable<response> {
               if (auto denied = http::require_bearer(req, ctx->admin_token))
                 co_return *denied;
               auto id = req.path_params.at("id");
               auto work = [ctx, id] {
                 auto c = ctx->customers.find(id);
                 if (!c)
                   return http::error_response(status::not_found, "not_found", "customerId",
                                               "no customer with id " + id);
                 return http::json_response(status::ok, customer_json(*c));
               };
               co_return co_await http::run_blocking(ctx->blocking, work);
             });
}

}  // namespace op::orders
