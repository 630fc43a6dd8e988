#pragma once
// Runs one request through a router on a throwaway io_context, as the HTTP server would.

#include <string>

#include "platform/http/router.hpp"

namespace op::test {

inline http::response dispatch(const http::router& r, http::verb method, std::string target) {
  http::request req{method, target, 11};
  asio::io_context ioc;
  http::response out;
  asio::co_spawn(
      ioc, [&]() -> asio::awaitable<void> { out = co_await r.dispatch(req); }, asio::detached);
  ioc.run();
  return out;
}

}  // namespace op::test
