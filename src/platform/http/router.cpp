#include "platform/http/router.hpp"

#include <fmt/format.h>

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

asio::awaitable<response> router::dispatch(const request& req) const {
  auto started = std::chrono::steady_clock::now();
  std::string route = "unmatched";
  response res = co_await route_request(req, route);
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

asio::awaitable<response> router::route_request(const request& req, std::string& route) const {
  std::string path;
  std::map<std::string, std::string> query;
  split_target(std::string_view(req.target().data(), req.target().size()), path, query);
  auto segments = split_path(path);

  std::string allowed;
  for (const auto& r : routes_) {
    if (r.segments.size() != segments.size())
      continue;
    std::map<std::string, std::string> params;
    bool matches = true;
    for (std::size_t i = 0; i < segments.size() && matches; ++i) {
      if (is_param(r.segments[i]))
        params[r.segments[i].substr(1, r.segments[i].size() - 2)] = percent_decode(segments[i]);
      else
        matches = r.segments[i] == segments[i];
    }
    if (!matches)
      continue;
    if (r.method != req.method()) {
      if (!allowed.empty())
        allowed += ", ";
      allowed += std::string(beast_http::to_string(r.method));
      continue;
    }
    route = r.pattern;
    request_context ctx{req, std::move(params), std::move(query)};
    try {
      co_return co_await r.h(ctx);
    } catch (const std::exception& e) {
      log::get("http")->error("{} {} failed: {}", std::string(req.method_string()), r.pattern,
                              e.what());
    }
    co_return error_response(status::internal_server_error, "internal_error", std::nullopt,
                             "the server failed to handle this request; it has been logged");
  }
  if (!allowed.empty()) {
    auto res = error_response(status::method_not_allowed, "method_not_allowed", std::nullopt,
                              fmt::format("{} is not allowed on {}; allowed: {}",
                                          std::string(req.method_string()), path, allowed));
    res.set(beast_http::field::allow, allowed);
    co_return res;
  }
  co_return error_response(status::not_found, "not_found", std::nullopt,
                           fmt::format("no such resource: {}", path));
}

}  // namespace op::http
