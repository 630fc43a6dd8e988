// The argument forms the code base passes to coroutines inside co_await (see
// platform/runtime/asio.hpp). Under the ASan build a double destruction fails this test.

#include <catch2/catch.hpp>
#include <functional>
#include <string>

#include "platform/runtime/asio.hpp"

namespace {
using op::asio::awaitable;

awaitable<std::size_t> length_of(std::string text) {
  co_return text.size();
}
awaitable<std::size_t> call(const std::function<std::size_t()>& f) {
  co_return f();
}

std::size_t run(awaitable<std::size_t> (*body)()) {
  op::asio::io_context ioc;
  std::size_t result = 0;
  op::asio::co_spawn(ioc, body(), [&](std::exception_ptr, std::size_t r) { result = r; });
  ioc.run();
  return result;
}
}  // namespace

TEST_CASE("named locals and moved locals reach coroutines intact", "[coroutines]") {
  CHECK(run([]() -> awaitable<std::size_t> {
          std::string text(100, 'x');
          co_return co_await length_of(text);
        }) == 100);
  CHECK(run([]() -> awaitable<std::size_t> {
          std::string text(100, 'x');
          co_return co_await length_of(std::move(text));
        }) == 100);
  CHECK(run([]() -> awaitable<std::size_t> {
          std::string captured(100, 'c');
          const std::function<std::size_t()> f = [captured] { return captured.size(); };
          co_return co_await call(f);
        }) == 100);
}
