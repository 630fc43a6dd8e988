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

#include "platform/http/event_stream.hpp"
#include "platform/http/message.hpp"
#include "platform/runtime/asio.hpp"

namespace op::http {

class router {
 public:
  using handler = std::function<asio::awaitable<response>(request_context&)>;

  void add(verb method, std::string pattern, handler h);

  // A server-sent events route: a GET of exactly `path` (any query) is handed to the server
  // as a stream (see event_stream.hpp) instead of one response. HEAD of it is answered with
  // the stream's headers and no body; other methods get 405 as for any route.
  using stream_handler = std::function<asio::awaitable<stream_answer>(request_context&)>;
  void add_event_stream(std::string path, stream_handler h);
  // The stream route a request opens, or nullptr when it is not a GET of one.
  const stream_handler* event_stream_for(const request& req) const;

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
  std::map<std::string, stream_handler> streams_;  // by exact path
};

// Splits "/a/b?x=1&y=2" into its path and decoded query parameters.
void split_target(std::string_view target, std::string& path,
                  std::map<std::string, std::string>& query);

std::string percent_decode(std::string_view text);

// True for "application/json", in any case, with parameters, a charset only if it is UTF-8.
bool is_json_media_type(std::string_view content_type);

}  // namespace op::http
