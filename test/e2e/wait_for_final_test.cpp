// GET /api/orders/{id}?waitFor=final through the whole pipeline: the answer comes as soon as
// the order is final, or with its current state at the timeout, and thousands of requests wait
// at once without a thread each.

#include <fmt/format.h>

#include <atomic>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <thread>

#include "platform/runtime/asio.hpp"
#include "support/catalog_fixture.hpp"
#include "support/http_client.hpp"
#include "support/pipeline_fixture.hpp"
#include "support/test_environment.hpp"

using namespace op;
using namespace std::chrono_literals;

namespace {

using test::eventually;

using pipeline = test::pipeline_fixture;
namespace beast = boost::beast;

// Threads of a process, from /proc/<pid>/status.
int threads_of(pid_t pid) {
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("Threads:", 0) == 0)
      return std::stoi(line.substr(8));
  return -1;
}

// "2026-11-24T16:41:32.688Z" as a system clock time.
std::chrono::system_clock::time_point parse_timestamp(const std::string& text) {
  std::tm tm{};
  int millis = 0;
  REQUIRE(std::sscanf(text.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                      &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &millis) == 7);
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return std::chrono::system_clock::from_time_t(timegm(&tm)) + std::chrono::milliseconds(millis);
}

struct waited {
  int status = 0;
  std::string order_status;
  std::string timed_out;
};

// One GET on its own connection, as a coroutine: thousands run on one thread.
asio::awaitable<void> wait_for(unsigned short port, std::string target, waited& out,
                               std::atomic<int>& done) {
  try {
    asio::ip::tcp::socket socket(co_await asio::this_coro::executor);
    co_await socket.async_connect({asio::ip::make_address("127.0.0.1"), port}, asio::use_awaitable);
    beast::http::request<beast::http::empty_body> req{beast::http::verb::get, target, 11};
    req.set(beast::http::field::host, "127.0.0.1");
    co_await beast::http::async_write(socket, req, asio::use_awaitable);
    beast::flat_buffer buffer;
    beast::http::response<beast::http::string_body> res;
    co_await beast::http::async_read(socket, buffer, res, asio::use_awaitable);
    out.status = res.result_int();
    out.order_status = test::json_field(res.body(), "status");
    auto timed_out = res["Wait-Timed-Out"];
    out.timed_out.assign(timed_out.data(), timed_out.size());
  } catch (const std::exception&) {
    out.status = -1;
  }
  ++done;
}

// Waits until an order goes through: a server that joins the tests' consumer group after a
// killed one gets its partitions only when the group rebalances, which takes up to 10 s.
void wait_until_flowing(pipeline& p, const std::string& product) {
  REQUIRE(p.wait_final(p.order_of(product, 1, "6.00", "6.00")).status == "CONFIRMED");
}

}  // namespace

TEST_CASE("waitFor=final answers as soon as the order is final", "[wait]") {
  pipeline p;
  auto product = p.product("6.00", 10);
  wait_until_flowing(p, product);
  p.gateway.control(R"({"latencyMs":700})");
  auto id = p.order_of(product, 1, "6.00", "6.00");
  auto sent = std::chrono::steady_clock::now();
  auto reply = test::http_get(p.port(), "/api/orders/" + id + "?waitFor=final&timeoutMs=10000");
  auto arrived = std::chrono::system_clock::now();
  auto waited_for = std::chrono::steady_clock::now() - sent;
  INFO(reply.body);
  REQUIRE(reply.status == 200);
  CHECK(test::json_field(reply.body, "status") == "CONFIRMED");
  CHECK(reply.headers["wait-timed-out"] == "false");
  CHECK(waited_for >= 700ms);  // it did wait for the payment
  // The order's final timestamp (the server's clock, the same machine) against the answer.
  auto lag = std::chrono::duration_cast<std::chrono::milliseconds>(
      arrived - parse_timestamp(test::json_field(reply.body, "updatedAt")));
  WARN("waitFor=final answered " << lag.count() << " ms after the order became final");
  CHECK(lag >= -5ms);
  CHECK(lag < 1000ms);

  // Already final: at once, the same body as without waitFor.
  auto again = test::http_get(p.port(), "/api/orders/" + id + "?waitFor=final");
  CHECK(again.status == 200);
  CHECK(again.body == test::http_get(p.port(), "/api/orders/" + id).body);
  CHECK(again.headers["wait-timed-out"] == "false");
}

TEST_CASE("waitFor=final answers the current state when the timeout passes", "[wait]") {
  pipeline p(std::map<std::string, std::string>{{"APP_PAYMENT_TIMEOUT", "30000"}});
  auto product = p.product("6.00", 10);
  p.gateway.control(R"({"latencyMs":20000})");
  auto id = p.order_of(product, 1, "6.00", "6.00");
  auto sent = std::chrono::steady_clock::now();
  auto reply = test::http_get(p.port(), "/api/orders/" + id + "?waitFor=final&timeoutMs=300");
  auto took = std::chrono::steady_clock::now() - sent;
  INFO(reply.body);
  CHECK(reply.status == 200);
  CHECK(reply.headers["wait-timed-out"] == "true");
  auto status = test::json_field(reply.body, "status");
  CHECK((status == "PLACED" || status == "VALIDATED" || status == "INVENTORY_RESERVED"));
  CHECK(took >= 300ms);
  CHECK(took < 3s);
}

TEST_CASE("2,000 requests wait at once without a thread each, then all get the final state",
          "[wait][concurrency]") {
  pipeline p(std::map<std::string, std::string>{{"APP_PAYMENT_TIMEOUT", "60000"}});
  const int waiters = 2000;
  const int orders = 20;
  auto product = p.product("1.00", 100);
  REQUIRE(p.wait_final(p.order_of(product, 1, "1.00", "1.00")).status == "CONFIRMED");
  // The charges take 20 s: long enough to hold every waiter.
  p.gateway.control(R"({"latencyMs":20000})");
  std::vector<std::string> ids;
  for (int i = 0; i < orders; ++i)
    ids.push_back(p.order_of(product, 1, "1.00", "1.00"));
  REQUIRE(eventually([&] {
    for (const auto& id : ids)
      if (p.status_of(id) != "INVENTORY_RESERVED")
        return false;
    return true;
  }));
  const int threads_before = threads_of(p.server->pid());
  REQUIRE(threads_before > 0);

  asio::io_context client;
  std::vector<waited> answers(waiters);
  std::atomic<int> done{0};
  for (int i = 0; i < waiters; ++i) {
    std::string target = "/api/orders/" + ids[i % orders] + "?waitFor=final&timeoutMs=30000";
    asio::co_spawn(client, wait_for(p.port(), std::move(target), answers[i], done), asio::detached);
  }
  std::thread client_thread([&] { client.run(); });

  const bool all_waiting =
      eventually([&] { return p.metric("orders_waiting_requests") == waiters || done > 0; }, 30s);
  const int threads_waiting = threads_of(p.server->pid());
  const double gauge = p.metric("orders_waiting_requests");
  CHECK(all_waiting);
  CHECK(gauge == waiters);
  CHECK(done == 0);
  WARN(fmt::format("server threads: {} before, {} with {} requests waiting", threads_before,
                   threads_waiting, gauge));
  // The pools are fixed; a thread per waiter would show as thousands.
  CHECK(threads_waiting <= threads_before + 2);

  p.gateway.control(R"({"latencyMs":0})");  // the charges in flight keep their 20 s
  client_thread.join();                     // every request answered
  for (const auto& a : answers) {
    INFO(a.status << " " << a.order_status << " Wait-Timed-Out: " << a.timed_out);
    CHECK(a.status == 200);
    CHECK(a.order_status == "CONFIRMED");
    CHECK(a.timed_out == "false");
  }
  CHECK(p.metric("orders_waiting_requests") == 0);
}

TEST_CASE("on SIGTERM, waiting requests answer the order as it stands at once", "[wait]") {
  pipeline p(std::map<std::string, std::string>{{"APP_PAYMENT_TIMEOUT", "60000"}});
  auto product = p.product("6.00", 10);
  p.gateway.control(R"({"latencyMs":30000})");
  auto id = p.order_of(product, 1, "6.00", "6.00");
  asio::io_context client;
  waited answer;
  std::atomic<int> done{0};
  std::string target = "/api/orders/" + id + "?waitFor=final&timeoutMs=30000";
  asio::co_spawn(client, wait_for(p.port(), std::move(target), answer, done), asio::detached);
  std::thread client_thread([&] { client.run(); });
  REQUIRE(eventually([&] { return p.metric("orders_waiting_requests") == 1; }));
  auto sent = std::chrono::steady_clock::now();
  std::thread stopper([&] { p.server->terminate(); });
  client_thread.join();
  auto took = std::chrono::steady_clock::now() - sent;
  stopper.join();
  CHECK(answer.status == 200);
  CHECK(answer.timed_out == "true");
  CHECK((answer.order_status == "VALIDATED" || answer.order_status == "INVENTORY_RESERVED" ||
         answer.order_status == "PLACED"));
  CHECK(took < 5s);
}
