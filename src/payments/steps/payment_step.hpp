#pragma once
// The payments area's part of the saga: the pay step, and the refund the saga asks for as
// compensation (carried out later by refund_worker).
//
// The step charges outside any transaction (the gateway call is asynchronous, on the
// gateway's own connections), then records the outcome through the engine like any step:
// - approved: the payment row, PAYMENT_PROCESSED;
// - declined: the order is cancelled (PAYMENT_DECLINED), its stock released;
// - a transient failure: written to stage_retries and run again after the backoff
//   (app.retry.*); the gateway's open circuit waits without using up an attempt. When the
//   retries are used up the order is cancelled (PAYMENT_FAILED, stock released, refund
//   requested: a timed-out call may have captured) and the message dead-lettered.

#include <pqxx/pqxx>

#include "payments/app/ports.hpp"
#include "platform/pg/connection_pool.hpp"
#include "saga/engine/step_engine.hpp"

namespace op::payments {

class payment_step {
 public:
  static constexpr const char* name = "pay";

  payment_step(saga::step_engine& engine, pg::connection_pool& pool, payment_gateway& gateway)
      : engine_(engine), pool_(pool), gateway_(gateway) {}

  // The stage runner: a message of the stage's topic, or a due retry of one.
  asio::awaitable<void> run(const kafka::consumed_message& message, const saga::stage_retry* retry);

  // The saga's refund command: a refund the refund worker sends, by order id.
  static void request_refund(saga::transaction_scope& scope, const saga::saga_row& row);
  static bool refund_requested(pqxx::work& tx, const std::string& order_id);

  static void prepare_statements(pqxx::connection& c);

 private:
  saga::step_engine& engine_;
  pg::connection_pool& pool_;
  payment_gateway& gateway_;
};

}  // namespace op::payments
