#pragma once
// Runs the real order-pipeline binary as a child process, the way an operator would, with
// the test services and a free port. Its log goes to a file the test can read.

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>

namespace op::test {

class server_process {
 public:
  // `env` is added to the defaults (test database, test Kafka, a free HTTP port, group id).
  explicit server_process(std::map<std::string, std::string> env = {});
  ~server_process();  // SIGKILL if still running
  server_process(const server_process&) = delete;
  server_process& operator=(const server_process&) = delete;

  void start();
  // Polls /actuator/health/readiness until 200; FAILs the test after `timeout`.
  void wait_until_ready(std::chrono::seconds timeout = std::chrono::seconds(60));
  // Sends SIGTERM and waits; returns the exit status (or -signal).
  int terminate(std::chrono::seconds timeout = std::chrono::seconds(30));
  void kill();
  bool running();

  unsigned short port() const { return port_; }
  std::string log_text() const;
  const std::string& log_path() const { return log_path_; }

 private:
  std::map<std::string, std::string> env_;
  unsigned short port_;
  std::string log_path_;
  pid_t pid_ = -1;
};

}  // namespace op::test
