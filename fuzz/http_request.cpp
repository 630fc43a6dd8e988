// Fuzz target: raw bytes from a client, as the HTTP server reads them (Beast's request parser
// with the server's body limit), then, for a request that parses, the router's dispatch on
// the server's route patterns with handlers that answer trivially, the query and path
// decoding (split_target, percent_decode), the admin API's bearer check (require_bearer) and
// the traceparent header (trace_id_of).
//
// Properties, beyond not crashing:
// - a parsed body never exceeds the body limit;
// - 200 comes only from a route whose pattern matches the path (literal segments equal, every
//   {param} the percent-decoded segment) and whose method is the request's; a literal route
//   is never answered by a {param} route; 404 only when no pattern has the path's shape;
//   405 only when one has, with an Allow header naming only methods the path has routes for;
//   401 only from an admin route, and only when the header is not "Bearer <token>";
// - every error answer is the JSON error shape, in valid UTF-8, whatever bytes the path had;
// - an admin route admits a request only when its Authorization header is the bearer scheme
//   followed by exactly the token, and always admits "Bearer <token>";
// - percent_decode undoes percent-encoding of any bytes and never lengthens its input;
//   split_target's path is the target before '?';
// - metric labels stay bounded: the method label of http_server_requests_total is a method
//   name Beast knows (or one placeholder), never whatever token the client sent;
// - a trace id taken from traceparent is 32 lowercase hex digits, not all zero, and survives
//   make_traceparent.

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "platform/config/app_config.hpp"
#include "platform/http/bearer_auth.hpp"
#include "platform/http/router.hpp"
#include "platform/log/logging.hpp"
#include "platform/log/trace_context.hpp"
#include "platform/metrics/registry.hpp"

using namespace op;
using namespace op::http;

namespace {

constexpr std::string_view admin_token = "fuzz-admin-token";

struct route_spec {
  verb method;
  const char* pattern;
  bool admin;
};

// The server's routes (src/bootstrap/application.cpp registers them in this order).
const route_spec route_specs[] = {
    {verb::get, "/api/orders/health", false},
    {verb::get, "/actuator/health", false},
    {verb::get, "/actuator/health/liveness", false},
    {verb::get, "/actuator/health/readiness", false},
    {verb::get, "/metrics", false},
    {verb::get, "/actuator/metrics", false},
    {verb::get, "/actuator/metrics/{name}", false},
    {verb::post, "/api/orders", false},
    {verb::get, "/api/orders", false},
    {verb::get, "/api/orders/{id}", false},
    {verb::get, "/api/orders/{id}/events", false},
    {verb::get, "/api/admin/metrics", true},
    {verb::put, "/api/admin/customers/{id}", true},
    {verb::get, "/api/admin/customers/{id}", true},
    {verb::put, "/api/admin/products/{id}", true},
    {verb::get, "/api/admin/products/{id}", true},
    {verb::get, "/api/admin/dlq", true},
    {verb::get, "/api/admin/dlq/{id}", true},
    {verb::post, "/api/admin/dlq/{id}/replay", true},
    {verb::post, "/api/admin/dlq/replay", true},
    {verb::post, "/fuzz/boom", false},  // a handler that throws: the router answers 500
};

// What the last handler saw.
struct handled {
  const route_spec* route = nullptr;
  std::map<std::string, std::string> params;
  bool admitted = false;
};
handled last;

std::vector<std::string> split_segments(std::string_view path) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < path.size()) {
    auto end = path.find('/', i);
    if (end == std::string_view::npos)
      end = path.size();
    if (end > i)
      out.emplace_back(path.substr(i, end - i));
    i = end + 1;
  }
  return out;
}

bool is_param(std::string_view segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

// Whether `pattern` has the shape of `segments`: as many segments, literal ones equal.
bool shape_matches(std::string_view pattern, const std::vector<std::string>& segments) {
  auto pattern_segments = split_segments(pattern);
  if (pattern_segments.size() != segments.size())
    return false;
  for (std::size_t i = 0; i < segments.size(); ++i)
    if (!is_param(pattern_segments[i]) && pattern_segments[i] != segments[i])
      return false;
  return true;
}

bool all_literal(std::string_view pattern) {
  for (const auto& s : split_segments(pattern))
    if (is_param(s))
      return false;
  return true;
}

const router& the_router() {
  static const router r = [] {
    router built;
    for (const auto& spec : route_specs) {
      const route_spec* s = &spec;
      built.add(spec.method, spec.pattern, [s](request_context& ctx) -> asio::awaitable<response> {
        last = {s, ctx.path_params, false};
        if (s->method == verb::post && std::string_view(s->pattern) == "/fuzz/boom")
          throw std::runtime_error("boom");
        if (s->admin) {
          const std::string expected(admin_token);
          if (auto denied = require_bearer(ctx, expected))
            co_return *denied;
          last.admitted = true;
        }
        co_return text_response(status::ok, "ok");
      });
    }
    return built;
  }();
  return r;
}

std::string percent_encode_all(std::string_view bytes) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : bytes) {
    out += '%';
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

// Parses like the server's async_read of a connection that sent `bytes` and closed.
std::optional<request> parse(std::string_view bytes, std::size_t body_limit) {
  beast_http::request_parser<beast_http::string_body> parser;
  parser.body_limit(body_limit);
  boost::beast::error_code ec;
  std::size_t used = 0;
  for (;;) {
    auto n = parser.put(asio::buffer(bytes.data() + used, bytes.size() - used), ec);
    used += n;
    if (ec == beast_http::error::need_more) {
      ec = {};
      if (n > 0 && used < bytes.size())
        continue;
      if (!parser.got_some())
        return std::nullopt;
      parser.put_eof(ec);
      break;
    }
    if (ec || parser.is_done())
      break;
    if (n == 0)
      return std::nullopt;
  }
  if (ec || !parser.is_done())
    return std::nullopt;
  return parser.release();
}

void check_decoding(std::string_view target) {
  auto decoded = percent_decode(target);
  FUZZ_CHECK(decoded.size() <= target.size(), std::string(target));
  FUZZ_CHECK(percent_decode(percent_encode_all(target)) == target, std::string(target));

  std::string path;
  std::map<std::string, std::string> query;
  split_target(target, path, query);
  FUZZ_CHECK(path == target.substr(0, target.find('?')), std::string(target));
  if (target.find('?') == std::string_view::npos)
    FUZZ_CHECK(query.empty(), std::string(target));
}

void check_trace(std::string_view traceparent) {
  auto id = log::trace_id_of(traceparent);
  if (!id)
    return;
  FUZZ_CHECK(id->size() == 32, *id);
  FUZZ_CHECK(id->find_first_not_of("0123456789abcdef") == std::string::npos, *id);
  FUZZ_CHECK(id->find_first_not_of('0') != std::string::npos, *id);
  FUZZ_CHECK(log::trace_id_of(log::make_traceparent(*id)) == id, *id);
}

void check_metric_labels(const request& req) {
  if (req.method() != verb::unknown)
    return;
  // A method Beast does not know: its text must not become a label value.
  auto raw = std::string(req.method_string());
  auto exposed = metrics::global().expose();
  FUZZ_CHECK(exposed.find("method=\"" + raw + "\"") == std::string::npos,
             "method label \"" + raw + "\" in http_server_requests_total");
}

void check_answer(const request& req, const response& res) {
  std::string_view target(req.target().data(), req.target().size());
  auto path = target.substr(0, target.find('?'));
  auto segments = split_segments(path);
  const auto code = res.result_int();

  std::vector<const route_spec*> shaped;  // routes whose pattern has the path's shape
  for (const auto& spec : route_specs)
    if (shape_matches(spec.pattern, segments))
      shaped.push_back(&spec);

  // A HEAD answer carries GET's headers and no body; any other error answer is error JSON.
  if (req.method() == verb::head)
    FUZZ_CHECK(res.body().empty() && res.has_content_length(), std::to_string(code));
  else if (code != 200)
    FUZZ_CHECK(fuzz::is_error_json(res.body()), std::to_string(code) + " " + res.body());

  switch (code) {
    case 200: {
      const auto* r = last.route;
      FUZZ_CHECK(r != nullptr, "200 without a handler");
      FUZZ_CHECK(shape_matches(r->pattern, segments), std::string(r->pattern));
      FUZZ_CHECK(
          r->method == req.method() || (req.method() == verb::head && r->method == verb::get),
          std::string(r->pattern));
      if (!all_literal(r->pattern))
        for (const auto& spec : shaped)
          FUZZ_CHECK(!all_literal(spec->pattern) || spec->method != req.method(),
                     std::string(spec->pattern) + " answered by " + r->pattern);
      auto pattern_segments = split_segments(r->pattern);
      for (std::size_t i = 0; i < segments.size(); ++i)
        if (is_param(pattern_segments[i])) {
          auto name = pattern_segments[i].substr(1, pattern_segments[i].size() - 2);
          FUZZ_CHECK(last.params.count(name) && last.params[name] == percent_decode(segments[i]),
                     name);
        }
      if (r->admin)
        FUZZ_CHECK(last.admitted, std::string(r->pattern));
      break;
    }
    case 401:
      FUZZ_CHECK(last.route && last.route->admin && !last.admitted, "401 outside the admin API");
      FUZZ_CHECK(res[beast_http::field::www_authenticate] == "Bearer", "no WWW-Authenticate");
      break;
    case 404:
      FUZZ_CHECK(shaped.empty(), std::string(path) + " has routes");
      break;
    case 405: {
      FUZZ_CHECK(!shaped.empty(), std::string(path) + " has no route");
      std::string allow(res[beast_http::field::allow]);
      FUZZ_CHECK(!allow.empty(), "405 without Allow");
      std::size_t start = 0;
      while (start <= allow.size()) {
        auto comma = allow.find(", ", start);
        auto name =
            allow.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        bool routed = false;
        for (const auto* spec : shaped)
          routed |= name == std::string(beast_http::to_string(spec->method)) ||
                    (name == "HEAD" && spec->method == verb::get);  // HEAD answered like GET
        FUZZ_CHECK(routed, "Allow: " + allow);
        if (comma == std::string::npos)
          break;
        start = comma + 2;
      }
      break;
    }
    case 415:
      FUZZ_CHECK(req.method() == verb::post || req.method() == verb::put, "415 for a read");
      break;
    case 500:
      FUZZ_CHECK(last.route && std::string_view(last.route->pattern) == "/fuzz/boom",
                 "500 from a handler that does not throw");
      break;
    default:
      FUZZ_CHECK(false, "unexpected status " + std::to_string(code));
  }

  // The admin API's door.
  if (last.route && last.route->admin && (code == 200 || code == 401)) {
    auto header = req[beast_http::field::authorization];
    std::string_view h(header.data(), header.size());
    const std::string exact = "Bearer " + std::string(admin_token);
    if (h == exact)
      FUZZ_CHECK(last.admitted, "Bearer <token> refused");
    if (last.admitted) {
      auto space = h.find(' ');
      FUZZ_CHECK(space != std::string_view::npos && iequals(h.substr(0, space), "Bearer") &&
                     h.substr(space + 1) == admin_token,
                 "admitted: " + std::string(h));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  log::init({"off", {}});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const auto body_limit = config::http_config{}.body_limit_bytes;
  auto req = parse(bytes, body_limit);
  if (!req)
    return 0;
  FUZZ_CHECK(req->body().size() <= body_limit, std::to_string(req->body().size()));

  std::string_view target(req->target().data(), req->target().size());
  check_decoding(target);
  auto tp = (*req)["traceparent"];
  check_trace(std::string_view(tp.data(), tp.size()));

  last = {};
  asio::io_context ioc;
  std::optional<response> res;
  asio::co_spawn(
      ioc, [&]() -> asio::awaitable<void> { res = co_await the_router().dispatch(*req); },
      asio::detached);
  ioc.run();
  FUZZ_CHECK(res.has_value(), "dispatch did not answer");
  check_answer(*req, *res);
  check_metric_labels(*req);
  return 0;
}
