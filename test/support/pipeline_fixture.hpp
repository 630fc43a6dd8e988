#pragma once
// A whole pipeline for end-to-end tests: the payment gateway simulator, the real server
// (started and ready) and a customer of its own, with helpers to stock products, place
// orders and wait for their final state.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "support/server_process.hpp"
#include "support/simulator_process.hpp"

namespace op::test {

class pipeline_fixture {
 public:
  // `env` is added to the server's environment (e.g. shorter retry delays); `binary` is the
  // program to run (order-pipeline or one built on it, such as an example).
  explicit pipeline_fixture(std::map<std::string, std::string> env = {},
                            std::string binary = ORDER_PIPELINE_BINARY);

  simulator_process gateway;
  std::unique_ptr<server_process> server;
  std::string customer;

  unsigned short port() const { return server->port(); }

  // Replaces the server by a new process with the same environment plus `env`, e.g. after
  // server->kill(); waits until it is ready. A non-empty `binary` runs another program from
  // then on (a release that adds or removes a step).
  void restart_server(const std::map<std::string, std::string>& env = {},
                      const std::string& binary = "");

  std::string product(const std::string& price, std::int64_t stock, bool active = true);
  // POSTs the body, REQUIREs 200 and returns the order id. Catch2's assertions are not
  // thread-safe: threads that place orders POST order_body(...) themselves and leave the
  // checks to the test's thread.
  std::string place(const std::string& body);
  std::string order_body(const std::string& product_id, int quantity, const std::string& price,
                         const std::string& total, const std::string& payment_method = "",
                         const std::string& customer_id = "") const;
  std::string order_of(const std::string& product_id, int quantity, const std::string& price,
                       const std::string& total, const std::string& payment_method = "",
                       const std::string& customer_id = "");

  struct final_state {
    std::string status;
    std::string reason;
    std::string detail;
    std::string body;
  };
  // Polls the order until it reaches CONFIRMED, CANCELLED or FAILED; FAILs after `timeout`.
  final_state wait_final(const std::string& id,
                         std::chrono::seconds timeout = std::chrono::seconds(60));
  // The order's status now.
  std::string status_of(const std::string& id);

  // Captured minus refunded at the gateway.
  std::int64_t charged_cents(const std::string& order_id);

  // One sample of the server's GET /metrics ("name" or "name{labels}"); 0 when absent.
  double metric(const std::string& series);

 private:
  std::map<std::string, std::string> env_;
  std::string binary_;
};

}  // namespace op::test
