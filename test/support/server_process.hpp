#pragma once
// Runs the real order-pipeline binary (or another program built on the pipeline, such as an
// example) as a child process, the way an operator would, with the test services and a free
// port. Its log goes to a file the test can read.

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>

namespace op::test {

class server_process {
 public:
  // `env` is added to the defaults (test database, test Kafka, a free HTTP port, group id);
  // TEST_DB_URL and TEST_KAFKA_BROKERS are needed only when `env` has no DB_URL/KAFKA_BROKERS.
  // `binary`: the program to run, with order-pipeline's command line.
  explicit server_process(std::map<std::string, std::string> env = {},
                          std::string binary = ORDER_PIPELINE_BINARY);
  ~server_process();  // SIGKILL if still running
  server_process(const server_process&) = delete;
  server_process& operator=(const server_process&) = delete;

  void start();
  // Polls /actuator/health/readiness until 200; FAILs the test after `timeout`.
  void wait_until_ready(std::chrono::seconds timeout = std::chrono::seconds(60));

  // The same without Catch2 assertions, which are not thread-safe: for a thread that restarts
  // a server while the test's other threads run. `append_log` keeps the earlier runs' log.
  // The child dies with the calling thread (PR_SET_PDEATHSIG): call it from a thread that
  // lives as long as the server should.
  bool spawn(bool append_log = false);
  // True once readiness answers 200; false when the server exited or `timeout` passed.
  bool ready_within(std::chrono::milliseconds timeout);
  // Sends SIGTERM and waits; returns the exit status (or -signal).
  int terminate(std::chrono::seconds timeout = std::chrono::seconds(30));
  void kill();
  bool running();

  unsigned short port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string log_text() const;
  const std::string& log_path() const { return log_path_; }

 private:
  std::map<std::string, std::string> env_;
  std::string binary_;
  unsigned short port_;
  std::string log_path_;
  pid_t pid_ = -1;
};

}  // namespace op::test
