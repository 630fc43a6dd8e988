#include "support/server_process.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "support/catalog_fixture.hpp"
#include "support/http_client.hpp"
#include "support/test_environment.hpp"

namespace op::test {

server_process::server_process(std::map<std::string, std::string> env, std::string binary)
    : env_(std::move(env)), binary_(std::move(binary)) {
  // Defaults only for what `env` leaves out: a test with services of its own needs no
  // TEST_DB_URL.
  if (!env_.count("DB_URL"))
    env_["DB_URL"] = db_url();
  if (!env_.count("KAFKA_BROKERS"))
    env_["KAFKA_BROKERS"] = kafka_brokers();
  if (!env_.count("HTTP_PORT"))
    env_["HTTP_PORT"] = std::to_string(free_port());
  const std::map<std::string, std::string> defaults = {
      {"HTTP_ADDRESS", "127.0.0.1"},
      // One group for every test server: each continues where the previous one stopped
      // instead of replaying the topics from the beginning.
      {"KAFKA_GROUP_ID", "order-pipeline-tests"},
      {"APP_HEALTH_INTERVAL", "200"},
      {"SHUTDOWN_TIMEOUT", "5000"},
      {"ADMIN_TOKEN", test_admin_token},
  };
  for (const auto& [k, v] : defaults)
    env_.emplace(k, v);
  port_ = static_cast<unsigned short>(std::stoi(env_["HTTP_PORT"]));
  log_path_ =
      fmt::format("{}/server-{}.log",
                  std::getenv("TEST_LOG_DIR") ? std::getenv("TEST_LOG_DIR") : "/tmp", port_);
}

server_process::~server_process() {
  kill();
}

void server_process::start() {
  REQUIRE(spawn());
}

bool server_process::spawn(bool append_log) {
  int log_fd =
      ::open(log_path_.c_str(), O_WRONLY | O_CREAT | (append_log ? O_APPEND : O_TRUNC), 0644);
  if (log_fd < 0)
    return false;
  pid_ = ::fork();
  if (pid_ < 0) {
    ::close(log_fd);
    return false;
  }
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlives a crashed test
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    for (const auto& [k, v] : env_)
      ::setenv(k.c_str(), v.c_str(), 1);
    ::chdir(repo_root().c_str());
    const auto name = binary_.substr(binary_.rfind('/') + 1);
    ::execl(binary_.c_str(), name.c_str(), "--config", "config/application.yml",
            static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  ::close(log_fd);
  return true;
}

bool server_process::ready_within(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!running())
      return false;
    try {
      if (http_call(port_, "GET", "/actuator/health/readiness", "", {}, std::chrono::seconds(2))
              .status == 200)
        return true;
    } catch (const std::exception&) {
      // not listening yet
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

void server_process::wait_until_ready(std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!running())
      FAIL("server exited during start-up; log:\n" << log_text());
    try {
      if (http_get(port_, "/actuator/health/readiness").status == 200)
        return;
    } catch (const std::exception&) {
      // not listening yet
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  FAIL("server not ready within " << timeout.count() << "s; log:\n" << log_text());
}

bool server_process::running() {
  if (pid_ <= 0)
    return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == 0)
    return true;
  pid_ = -1;  // exited (and now reaped)
  return false;
}

int server_process::terminate(std::chrono::seconds timeout) {
  if (pid_ <= 0)
    return -1;
  ::kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill();
  return -SIGKILL;
}

void server_process::kill() {
  if (pid_ <= 0)
    return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string server_process::log_text() const {
  std::ifstream in(log_path_);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace op::test
