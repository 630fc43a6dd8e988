#include "support/test_environment.hpp"

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <random>

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
  asio::io_context ioc;
  asio::ip::tcp::acceptor acceptor(ioc, {asio::ip::make_address("127.0.0.1"), 0});
  return acceptor.local_endpoint().port();
}

std::string unique_name(const std::string& prefix) {
  static std::mt19937_64 rng(std::random_device{}());
  auto now = std::chrono::system_clock::now().time_since_epoch().count();
  return fmt::format("{}-{:x}-{:x}", prefix, now, rng() & 0xffff);
}

}  // namespace op::test
