#pragma once
// Runs one request through a router on a throwaway io_context, as the HTTP server would.

#include <string>

#include "platform/http/router.hpp"

namespace op::test {

// `content_type` and `body`, when given, are sent as a client would (Content-Length set).
inline http::response dispatch(const http::router& r, http::verb method, std::string target,
                               std::string content_type = "", std::string body = "") {
  http::request req{method, target, 11};
  if (!content_type.empty())
    req.set(http::beast_http::field::content_type, content_type);
  req.body() = std::move(body);
  req.prepare_payload();
  asio::io_context ioc;
  http::response out;
  asio::co_spawn(
      ioc, [&]() -> asio::awaitable<void> { out = co_await r.dispatch(req); }, asio::detached);
  ioc.run();
  return out;
}

}  // namespace op::test
