// Security basics of the HTTP listener and the logs, against the real server: request limits
// (head size, read and idle timeouts, connection count) and no secret or personal data in
// any log line at any level.

#include <fmt/format.h>

#include <array>
#include <catch2/catch.hpp>
#include <optional>
#include <thread>

#include "platform/runtime/asio.hpp"
#include "support/catalog_fixture.hpp"
#include "support/http_client.hpp"
#include "support/server_process.hpp"
#include "support/simulator_process.hpp"
#include "support/test_environment.hpp"

using namespace op;
using namespace std::chrono_literals;
using tcp = asio::ip::tcp;

namespace {

// A raw TCP connection, to hold a connection open or send half a request.
struct raw_connection {
  asio::io_context ioc;
  tcp::socket socket{ioc};
  explicit raw_connection(unsigned short port) {
    socket.connect({asio::ip::make_address("127.0.0.1"), port});
  }
  void send(const std::string& bytes) { asio::write(socket, asio::buffer(bytes)); }

  // What arrives within `timeout`: the bytes read, and whether the server closed the
  // connection. Reads until the close, or until `enough` bytes when it is not 0.
  struct received {
    std::string bytes;
    bool closed = false;
  };
  received read_for(std::chrono::milliseconds timeout, std::size_t enough = 0) {
    received out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    socket.non_blocking(true);
    std::array<char, 4096> chunk;
    while (std::chrono::steady_clock::now() < deadline &&
           (enough == 0 || out.bytes.size() < enough)) {
      boost::system::error_code ec;
      auto n = socket.read_some(asio::buffer(chunk), ec);
      if (ec == asio::error::would_block) {
        std::this_thread::sleep_for(5ms);
        continue;
      }
      if (ec) {
        out.closed = true;  // EOF or reset
        break;
      }
      out.bytes.append(chunk.data(), n);
    }
    return out;
  }
};

std::string health_request() {
  return "GET /api/orders/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
}

}  // namespace

TEST_CASE("request limits: a head too large, a client too slow, an idle connection",
          "[http][limits]") {
  test::server_process server(std::map<std::string, std::string>{
      {"SERVER_READ_TIMEOUT", "500"}, {"SERVER_MAX_HEADER_BYTES", "2048"}});
  server.start();
  server.wait_until_ready();
  auto port = server.port();

  auto big = test::http_call(port, "GET", "/api/orders/health", "",
                             {{"X-Padding", std::string(4000, 'x')}});
  CHECK(big.status == 431);
  CHECK(test::json_field(big.body, "error") == "request_header_fields_too_large");
  CHECK(test::http_call(port, "GET", "/api/orders/health", "",
                        {{"X-Padding", std::string(1000, 'x')}})
            .status == 200);

  // An idle keep-alive connection is closed after server.read-timeout.
  raw_connection idle(port);
  idle.send(health_request());
  auto first = idle.read_for(10s, 1);
  CHECK(first.bytes.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(idle.read_for(10s).closed);

  // So is a client that never finishes its request head (slowloris).
  raw_connection slow(port);
  slow.send("GET /api/orders/health HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  auto answer = slow.read_for(10s);
  CHECK(answer.closed);
  CHECK(answer.bytes.find("200 OK") == std::string::npos);

  // And one that sends a head but not the body it announced.
  raw_connection short_body(port);
  short_body.send(
      "POST /api/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Content-Length: 100\r\n\r\n{\"customerId\"");
  CHECK(short_body.read_for(10s).closed);
  CHECK(test::http_get(port, "/actuator/health/readiness").status == 200);
}

TEST_CASE("at server.max-connections a new client waits until a connection closes",
          "[http][limits]") {
  test::server_process server(std::map<std::string, std::string>{{"SERVER_MAX_CONNECTIONS", "3"}});
  server.start();
  server.wait_until_ready();
  auto port = server.port();
  // Readiness polling used keep-alive connections of its own; wait until they are gone.
  auto deadline = std::chrono::steady_clock::now() + 30s;
  std::vector<std::unique_ptr<raw_connection>> held;
  while (held.size() < 3 && std::chrono::steady_clock::now() < deadline) {
    // A connection counts once the server answered on it; it stays open (keep-alive).
    auto c = std::make_unique<raw_connection>(port);
    c->send(health_request());
    if (c->read_for(2s, 1).bytes.rfind("HTTP/1.1 200", 0) == 0)
      held.push_back(std::move(c));
  }
  REQUIRE(held.size() == 3);

  raw_connection waiting(port);  // the kernel completes the handshake; the server waits
  waiting.send(health_request());
  // While three are open the fourth is not served (nothing can answer it in this window).
  CHECK(waiting.read_for(1s, 1).bytes.empty());
  held.front()->socket.close();
  auto served = waiting.read_for(10s, 1);
  CHECK(served.bytes.rfind("HTTP/1.1 200", 0) == 0);
}

TEST_CASE("no token, card token, email or address reaches any log line, at any level",
          "[http][logs]") {
  test::simulator_process gateway;
  auto admin_token = test::unique_name("admin-token-secret");
  test::server_process server({{"PAYMENT_GATEWAY_URL", gateway.url()},
                               {"ADMIN_TOKEN", admin_token},
                               {"LOG_LEVEL", "trace"}});
  server.start();
  server.wait_until_ready();
  auto port = server.port();
  const std::map<std::string, std::string> admin = {{"Authorization", "Bearer " + admin_token}};

  auto customer = test::unique_name("cust-logs");
  auto product = test::unique_name("prod-logs");
  auto email = test::unique_name("mailbox") + "@example.com";
  auto address = test::unique_name("Secret Street");
  auto card = test::unique_name("pm_card_unknown");
  auto wrong_token = test::unique_name("wrong-token-secret");
  REQUIRE(test::http_call(port, "PUT", "/api/admin/customers/" + customer,
                          fmt::format(R"({{"email":"{}","name":"Logs"}})", email), admin)
              .status == 200);
  REQUIRE(test::http_call(port, "PUT", "/api/admin/products/" + product,
                          R"({"name":"Log","price":1.00,"stock":10})", admin)
              .status == 200);
  CHECK(test::http_call(port, "GET", "/api/admin/metrics", "",
                        {{"Authorization", "Bearer " + wrong_token}})
            .status == 401);

  std::vector<std::string> ids;
  for (const auto& method : {std::string("pm_card_visa"), card}) {
    auto reply = test::http_call(
        port, "POST", "/api/orders",
        fmt::format(
            R"({{"customerId":"{}","customerEmail":"{}","shippingAddress":"{}","paymentMethod":"{}","totalAmount":1.00,"items":[{{"productId":"{}","quantity":1,"price":1.00}}]}})",
            customer, email, address, method, product));
    REQUIRE(reply.status == 200);
    ids.push_back(test::json_field(reply.body, "orderId"));
  }
  for (const auto& id : ids) {
    std::string status;
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < deadline) {
      status = test::json_field(test::http_get(port, "/api/orders/" + id).body, "status");
      if (status == "CONFIRMED" || status == "CANCELLED")
        break;
      std::this_thread::sleep_for(50ms);
    }
    CHECK((status == "CONFIRMED" || status == "CANCELLED"));
  }
  server.terminate();

  auto log = server.log_text();
  CHECK(log.find("\"level\":\"DEBUG\"") != std::string::npos);  // the levels were on
  for (const auto& secret : {admin_token, wrong_token, email, address, card}) {
    INFO(secret);
    CHECK(log.find(secret) == std::string::npos);
  }
}
