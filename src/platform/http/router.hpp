#pragma once
// Maps method + path pattern (segments like /api/orders/{id}) to handler coroutines.
// Where several patterns match a path, the most specific one (a literal segment before a
// {param}) decides. Unknown paths get 404, known paths with another method 405 with an Allow
// header, both as JSON; HEAD is answered wherever GET is, without the body. A POST, PUT or
// PATCH whose body is not application/json gets 415 before any handler runs. A handler that
// throws gets a logged 500, never a dropped connection.

#include <functional>
#include <string>
#include <vector>

#include "platform/http/message.hpp"
#include "platform/runtime/asio.hpp"

namespace op::http {

class router {
 public:
  using handler = std::function<asio::awaitable<response>(request_context&)>;

  void add(verb method, std::string pattern, handler h);

  // Routes the request and records http_server_requests_total and its latency histogram,
  // labelled by the route pattern (bounded), never by the raw path.
  asio::awaitable<response> dispatch(const request& req) const;

 private:
  asio::awaitable<response> route_request(const request& req, std::string& route) const;

  struct route {
    verb method;
    std::string pattern;
    std::vector<std::string> segments;
    handler h;
  };
  std::vector<route> routes_;
};

// Splits "/a/b?x=1&y=2" into its path and decoded query parameters.
void split_target(std::string_view target, std::string& path,
                  std::map<std::string, std::string>& query);

std::string percent_decode(std::string_view text);

// True for "application/json", in any case, with parameters, a charset only if it is UTF-8.
bool is_json_media_type(std::string_view content_type);

}  // namespace op::http
