#pragma once
// Where the integration tests find the services ./scripts/test started for them.

#include <chrono>
#include <string>
#include <thread>

namespace op::test {

// Polls `condition` every 50 ms; false when `timeout` passed first.
template <class Condition>
bool eventually(Condition condition, std::chrono::seconds timeout = std::chrono::seconds(60)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return condition();
}

std::string db_url();         // TEST_DB_URL
std::string kafka_brokers();  // TEST_KAFKA_BROKERS
std::string repo_root();      // the source tree, for scripts/infra/*

// Runs a shell command from the repository root; returns its exit status.
int run_script(const std::string& command);

// A TCP port on loopback that was free a moment ago.
unsigned short free_port();

// A name no earlier test run used, for topics and groups.
std::string unique_name(const std::string& prefix);

}  // namespace op::test
