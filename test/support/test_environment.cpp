#include "support/test_environment.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <random>
#include <stdexcept>

#include "platform/runtime/asio.hpp"

namespace op::test {
namespace {
std::string required(const char* name) {
  const char* value = std::getenv(name);
  if (!value || !*value)
    FAIL(fmt::format("{} is not set: run the integration tests through ./scripts/test", name));
  return value;
}
}  // namespace

std::string db_url() {
  return required("TEST_DB_URL");
}
std::string kafka_brokers() {
  return required("TEST_KAFKA_BROKERS");
}
std::string repo_root() {
  return ORDER_PIPELINE_SOURCE_DIR;
}

int run_script(const std::string& command) {
  int status = std::system(fmt::format("cd '{}' && {}", repo_root(), command).c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

unsigned short free_port() {
  // Below Linux's ephemeral range (32768-60999), so no outgoing connection (to PostgreSQL,
  // Kafka, the gateway) can take the port between this check and the server's bind, and
  // clear of every instance's service ports (README). Each test process starts at its own
  // offset so two suites on one machine rarely probe the same ports.
  constexpr unsigned first = 20000, count = 5000;
  static std::atomic<unsigned> next{static_cast<unsigned>(::getpid()) * 7919u % count};
  asio::io_context ioc;
  for (unsigned tries = 0; tries < count; ++tries) {
    auto port = static_cast<unsigned short>(first + next.fetch_add(1) % count);
    boost::system::error_code ec;
    asio::ip::tcp::acceptor acceptor(ioc);
    acceptor.open(asio::ip::tcp::v4(), ec);
    if (!ec)
      acceptor.bind({asio::ip::make_address("127.0.0.1"), port}, ec);
    if (!ec)
      return port;
  }
  throw std::runtime_error("no free port in 20000-24999");
}

std::string unique_name(const std::string& prefix) {
  static std::mt19937_64 rng(std::random_device{}());
  auto now = std::chrono::system_clock::now().time_since_epoch().count();
  return fmt::format("{}-{:x}-{:x}", prefix, now, rng() & 0xffff);
}

}  // namespace op::test
