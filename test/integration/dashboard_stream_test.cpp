// The operator dashboard's live stream against the real server: server-sent events with the
// right headers, a snapshot at once and then every interval, not cut by the read timeout,
// refused with 503 past app.dashboard.max-clients, and ended cleanly by a SIGTERM drain.

#include <array>
#include <catch2/catch.hpp>
#include <thread>

#include "platform/runtime/asio.hpp"
#include "support/catalog_fixture.hpp"
#include "support/http_client.hpp"
#include "support/server_process.hpp"

using namespace op;
using namespace std::chrono_literals;
using tcp = asio::ip::tcp;

namespace {

// One client connection reading the stream as it arrives.
struct stream_client {
  asio::io_context ioc;
  tcp::socket socket{ioc};
  std::string received;
  bool closed = false;

  explicit stream_client(unsigned short port) {
    socket.connect({asio::ip::make_address("127.0.0.1"), port});
    std::string request =
        "GET /dashboard/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n";
    asio::write(socket, asio::buffer(request));
    socket.non_blocking(true);
  }

  // Reads until `done(received)` holds, the server closes, or `timeout` passes.
  template <class Done>
  bool read_until(Done done, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::array<char, 8192> chunk;
    while (!done(received)) {
      if (closed || std::chrono::steady_clock::now() > deadline)
        return false;
      boost::system::error_code ec;
      auto n = socket.read_some(asio::buffer(chunk), ec);
      if (ec == asio::error::would_block) {
        std::this_thread::sleep_for(5ms);
        continue;
      }
      if (ec) {
        closed = true;
        continue;
      }
      received.append(chunk.data(), n);
    }
    return true;
  }

  std::size_t events() const {
    std::size_t count = 0;
    for (auto at = received.find("event: snapshot\n"); at != std::string::npos;
         at = received.find("event: snapshot\n", at + 1))
      ++count;
    return count;
  }

  bool read_events(std::size_t n, std::chrono::milliseconds timeout) {
    return read_until(
        [&](const std::string& r) {
          return events() >= n && r.rfind("\n\n") != std::string::npos &&
                 r.rfind("\n\n") > r.rfind("event: snapshot\n");
        },
        timeout);
  }
};

std::string lower(std::string text) {
  for (auto& c : text)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

}  // namespace

TEST_CASE(
    "the dashboard stream sends snapshots, outlives the read timeout, refuses clients "
    "past the limit and ends on SIGTERM",
    "[dashboard][http]") {
  test::server_process server({{"DASHBOARD_MAX_CLIENTS", "2"},
                               {"APP_DASHBOARD_INTERVAL", "200"},
                               {"SERVER_READ_TIMEOUT", "1000"},
                               {"SHUTDOWN_TIMEOUT", "10000"}});
  server.start();
  server.wait_until_ready();
  auto port = server.port();

  auto page = test::http_get(port, "/dashboard");
  CHECK(page.status == 200);
  CHECK(page.headers["content-type"] == "text/html; charset=utf-8");
  CHECK(page.body.find("/dashboard/stream") == std::string::npos);  // the script opens it
  CHECK(test::http_get(port, "/dashboard/dashboard.js").body.find("/dashboard/stream") !=
        std::string::npos);
  CHECK(test::http_call(port, "POST", "/dashboard/stream", "{}").status == 405);

  stream_client first(port);
  REQUIRE(first.read_events(1, 10s));
  auto head = lower(first.received.substr(0, first.received.find("\r\n\r\n")));
  CHECK(head.rfind("http/1.1 200 ok", 0) == 0);
  CHECK(head.find("content-type: text/event-stream") != std::string::npos);
  CHECK(head.find("cache-control: no-store") != std::string::npos);
  CHECK(head.find("content-length") == std::string::npos);
  CHECK(first.received.find(R"("replica":")") != std::string::npos);
  CHECK(first.received.find(R"("newestOrders":[)") != std::string::npos);

  // Three seconds of events: three times server.read-timeout, and the stream goes on.
  REQUIRE(first.read_events(first.events() + 10, 10s));
  CHECK_FALSE(first.closed);

  stream_client second(port);
  REQUIRE(second.read_events(1, 10s));

  // A third viewer is one too many for DASHBOARD_MAX_CLIENTS=2.
  auto refused = test::http_get(port, "/dashboard/stream");
  CHECK(refused.status == 503);
  CHECK(test::json_field(refused.body, "error") == "too_many_streams");
  CHECK(refused.headers.count("retry-after") == 1);

  // Once a viewer leaves (noticed at its next event), a new one is let in.
  second.socket.close();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    stream_client again(port);
    again.read_until([](const std::string& r) { return r.find("\r\n\r\n") != std::string::npos; },
                     5s);
    status = again.received.rfind("HTTP/1.1 200", 0) == 0 ? 200 : 503;
    if (status == 200)
      break;
    std::this_thread::sleep_for(50ms);
  }
  CHECK(status == 200);

  // SIGTERM: the open stream ends (the server closes it) and the server exits cleanly.
  int exit_status = -1;  // Catch2's assertions are for the test's own thread only
  std::thread closer([&] { exit_status = server.terminate(20s); });
  CHECK(first.read_until([](const std::string&) { return false; }, 15s) == false);
  CHECK(first.closed);
  closer.join();
  CHECK(exit_status == 0);
}
