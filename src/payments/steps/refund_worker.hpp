#pragma once
// Sends the refunds the saga requested (payments.refund_state = 'PENDING'), on its own
// thread, on the replica that runs the pay step; a refund of an order never charged is a
// no-op at the gateway.

#include <atomic>
#include <chrono>
#include <pqxx/pqxx>
#include <thread>

#include "payments/app/ports.hpp"
#include "platform/pg/connection_pool.hpp"

namespace op::payments {

struct refund_settings {
  // A refund that finds nothing captured is repeated late_charge_checks times, after
  // 2, 4, 8, ... times late_charge_wait (the gateway call timeout): a charge whose answer
  // we never got may still be captured meanwhile.
  std::chrono::milliseconds late_charge_wait{5000};
  int late_charge_checks = 4;
};

class refund_worker {
 public:
  refund_worker(pg::connection_pool& pool, payment_gateway& gateway, refund_settings settings)
      : pool_(pool), gateway_(gateway), settings_(settings) {}
  ~refund_worker() { stop(); }
  refund_worker(const refund_worker&) = delete;
  refund_worker& operator=(const refund_worker&) = delete;

  static void prepare_statements(pqxx::connection& c);

  // The gateway's calls run on `ioc`.
  void start(asio::io_context& ioc);
  void stop();

 private:
  void run(asio::io_context& ioc);

  pg::connection_pool& pool_;
  payment_gateway& gateway_;
  const refund_settings settings_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace op::payments
