#include "platform/http/router.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <chrono>

#include "platform/log/logging.hpp"
#include "platform/metrics/registry.hpp"

namespace op::http {
namespace {

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    auto end = path.find('/', i);
    if (end == std::string_view::npos)
      end = path.size();
    out.emplace_back(path.substr(i, end - i));
    i = end;
  }
  return out;
}

bool is_param(const std::string& segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 &&
        hex_value(text[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
      i += 2;
    } else if (text[i] == '+') {
      out += ' ';
    } else {
      out += text[i];
    }
  }
  return out;
}

void split_target(std::string_view target, std::string& path,
                  std::map<std::string, std::string>& query) {
  auto q = target.find('?');
  path = std::string(target.substr(0, q));
  if (q == std::string_view::npos)
    return;
  auto rest = target.substr(q + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    auto pair = rest.substr(0, amp);
    auto eq = pair.find('=');
    if (!pair.empty()) {
      auto key = percent_decode(pair.substr(0, eq));
      auto value =
          eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1));
      query.emplace(std::move(key), std::move(value));
    }
    if (amp == std::string_view::npos)
      break;
    rest = rest.substr(amp + 1);
  }
}

void router::add(verb method, std::string pattern, handler h) {
  auto segments = split_path(pattern);
  routes_.push_back({method, std::move(pattern), std::move(segments), std::move(h)});
}

void router::add_event_stream(std::string path, stream_handler h) {
  // The plain route answers HEAD (GET's headers, no body) and gives other methods their 405.
  add(verb::get, path, [](request_context&) -> asio::awaitable<response> {
    response res{status::ok, 11};
    res.set(beast_http::field::content_type, "text/event-stream");
    res.set(beast_http::field::cache_control, "no-store");
    co_return res;
  });
  streams_[std::move(path)] = std::move(h);
}

const router::stream_handler* router::event_stream_for(const request& req) const {
  if (req.method() != verb::get || streams_.empty())
    return nullptr;
  std::string_view target(req.target().data(), req.target().size());
  auto it = streams_.find(std::string(target.substr(0, target.find('?'))));
  return it == streams_.end() ? nullptr : &it->second;
}

asio::awaitable<response> router::dispatch(const request& req) const {
  auto started = std::chrono::steady_clock::now();
  std::string route = "unmatched";
  response res = co_await route_request(req, route);
  if (req.method() == verb::head) {
    // The headers GET would send, Content-Length included, and no body (RFC 9110, 9.3.2).
    auto length = res.body().size();
    res.body().clear();
    res.content_length(length);
  }
  auto& registry = metrics::global();
  // Labels come from bounded sets: a method Beast does not know is any token a client sent,
  // and each would add series for ever.
  std::string method = req.method() == verb::unknown
                           ? std::string("OTHER")
                           : std::string(beast_http::to_string(req.method()));
  registry
      .get_counter(
          "http_server_requests_total", "HTTP requests answered.",
          {{"method", method}, {"route", route}, {"status", std::to_string(res.result_int())}})
      .inc();
  registry
      .get_histogram("http_server_request_duration_seconds",
                     "Time from a complete request to its response.",
                     {{"method", method}, {"route", route}})
      .observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  co_return res;
}

namespace {

// A route's pattern matches the path when every literal segment is equal.
bool match(const std::vector<std::string>& pattern, const std::vector<std::string>& path) {
  if (pattern.size() != path.size())
    return false;
  for (std::size_t i = 0; i < path.size(); ++i)
    if (!is_param(pattern[i]) && pattern[i] != path[i])
      return false;
  return true;
}

// The decoded values of the {name} segments of a pattern that matches `path`.
std::map<std::string, std::string> path_params(const std::vector<std::string>& pattern,
                                               const std::vector<std::string>& path) {
  std::map<std::string, std::string> params;
  for (std::size_t i = 0; i < path.size(); ++i)
    if (is_param(pattern[i]))
      params[pattern[i].substr(1, pattern[i].size() - 2)] = percent_decode(path[i]);
  return params;
}

// Of two patterns matching one path, the one whose first differing segment is a literal
// wins: /api/admin/dlq/replay is not /api/admin/dlq/{id} with id "replay".
bool more_specific(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    bool a_param = is_param(a[i]), b_param = is_param(b[i]);
    if (a_param != b_param)
      return !a_param;
  }
  return false;
}

bool takes_body(verb method) {
  return method == verb::post || method == verb::put || method == verb::patch;
}

}  // namespace

bool is_json_media_type(std::string_view content_type) {
  auto trim = [](std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
      text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
      text.remove_suffix(1);
    return text;
  };
  auto semicolon = content_type.find(';');
  if (!equals_ignoring_case(trim(content_type.substr(0, semicolon)), "application/json"))
    return false;
  // JSON is UTF-8 (RFC 8259); a charset parameter may only say so.
  while (semicolon != std::string_view::npos) {
    auto rest = content_type.substr(semicolon + 1);
    auto next = rest.find(';');
    auto parameter = trim(rest.substr(0, next));
    auto eq = parameter.find('=');
    if (!parameter.empty()) {
      if (eq == std::string_view::npos)
        return false;
      auto name = trim(parameter.substr(0, eq));
      auto value = trim(parameter.substr(eq + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
        value = value.substr(1, value.size() - 2);
      if (equals_ignoring_case(name, "charset") && !equals_ignoring_case(value, "utf-8"))
        return false;
    }
    semicolon = next == std::string_view::npos ? next : semicolon + 1 + next;
  }
  return true;
}

asio::awaitable<response> router::route_request(const request& req, std::string& route) const {
  std::string path;
  std::map<std::string, std::string> query;
  split_target(std::string_view(req.target().data(), req.target().size()), path, query);
  auto segments = split_path(path);

  // The most specific pattern matching the path decides; HEAD is answered by GET's handler.
  const std::vector<std::string>* best = nullptr;
  for (const auto& r : routes_)
    if (match(r.segments, segments) && (!best || more_specific(r.segments, *best)))
      best = &r.segments;
  if (!best)
    co_return error_response(status::not_found, "not_found", std::nullopt,
                             fmt::format("no such resource: {}", path));
  const verb wanted = req.method() == verb::head ? verb::get : req.method();
  const router::route* chosen = nullptr;
  std::vector<std::string> allowed;
  for (const auto& r : routes_) {
    if (r.segments != *best)
      continue;
    std::string name(beast_http::to_string(r.method));
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end())
      allowed.push_back(name);
    if (r.method == verb::get && std::find(allowed.begin(), allowed.end(), "HEAD") == allowed.end())
      allowed.push_back("HEAD");
    if (r.method == wanted && !chosen)
      chosen = &r;
  }
  if (!chosen) {
    auto list = fmt::format("{}", fmt::join(allowed, ", "));
    auto res = error_response(status::method_not_allowed, "method_not_allowed", std::nullopt,
                              fmt::format("{} is not allowed on {}; allowed: {}",
                                          std::string(req.method_string()), path, list));
    res.set(beast_http::field::allow, list);
    co_return res;
  }
  route = chosen->pattern;
  if (takes_body(req.method()) && !req.body().empty()) {
    auto type = req[beast_http::field::content_type];
    if (!is_json_media_type(std::string_view(type.data(), type.size())))
      co_return error_response(
          status::unsupported_media_type, "unsupported_media_type", "Content-Type",
          type.empty() ? "Content-Type: application/json is required for a request body"
                       : fmt::format("Content-Type must be application/json, not {}",
                                     std::string_view(type.data(), type.size())));
  }
  request_context ctx{req, path_params(chosen->segments, segments), std::move(query)};
  try {
    co_return co_await chosen->h(ctx);
  } catch (const std::exception& e) {
    log::get("http")->error("{} {} failed: {}", std::string(req.method_string()), chosen->pattern,
                            e.what());
  }
  co_return error_response(status::internal_server_error, "internal_error", std::nullopt,
                           "the server failed to handle this request; it has been logged");
}

}  // namespace op::http
