#pragma once
// The payment-gateway-simulator binary as a child process on a free port, and its
// bookkeeping (what it charged and refunded), read over its HTTP API.

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace op::test {

class simulator_process {
 public:
  // `port` 0 picks a free one.
  explicit simulator_process(unsigned short port = 0);
  ~simulator_process();
  simulator_process(const simulator_process&) = delete;
  simulator_process& operator=(const simulator_process&) = delete;

  unsigned short port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // A number from GET /v1/orders/{id} ("charges", "capturedCents", "refundedCents", ...).
  std::int64_t order(const std::string& order_id, const std::string& field) const;
  // A number from GET /v1/stats.
  std::int64_t stats(const std::string& field) const;
  // POST /control with a JSON body such as {"outage":true}.
  void control(const std::string& json) const;

 private:
  pid_t pid_ = -1;
  unsigned short port_ = 0;
};

}  // namespace op::test
