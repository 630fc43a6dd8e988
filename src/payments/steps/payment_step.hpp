#pragma once
// The payments area's part of the saga: the pay step, and the refund that compensates it
// (sent later by refund_worker).
//
// The step charges outside any transaction (prepare: the gateway call is asynchronous, on the
// gateway's own connections, and made only for an order that waits for its payment), then
// decides in the engine's transaction like any step:
// - approved: the payment row (written with the transaction's other payments in one
//   statement, right before the commit: payment_records), PAYMENT_PROCESSED;
// - declined: the order is cancelled (PAYMENT_DECLINED), its stock released;
// - a transient failure: retried after the backoff (app.retry.*); the gateway's open circuit
//   waits without using up an attempt. When the retries are used up the order is cancelled
//   (PAYMENT_FAILED, stock released, refund requested: a timed-out call may have captured)
//   and the message dead-lettered.

#include <cstdint>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <vector>

#include "order_pipeline/step.hpp"
#include "payments/app/ports.hpp"

namespace op::payments {

inline constexpr std::string_view payment_declined_reason = "PAYMENT_DECLINED";
inline constexpr std::string_view payment_failed_reason = "PAYMENT_FAILED";

// The payments captured by a transaction's orders, written together: one statement for the
// transaction instead of one per order.
class payment_records final : public order_pipeline::transaction_part {
 public:
  explicit payment_records(order_pipeline::step_context&) {}

  void add(std::string order_id, std::string charge_id, std::int64_t amount_cents);
  // Writes the payments added so far (a refund requested after it then finds its charge).
  void write(pqxx::work& tx);
  void before_commit(pqxx::work& tx) override { write(tx); }

 private:
  std::vector<std::string> order_ids_, charge_ids_;
  std::vector<std::int64_t> amounts_cents_;
};

// The pay step as the saga declares it (topic, deadline and retries come from the
// configuration); `gateway` outlives it.
order_pipeline::step payment_step(payment_gateway& gateway);

// Whether a refund was requested for the order: a repeated cancel answers as the first did.
bool refund_requested(pqxx::work& tx, const std::string& order_id);

void prepare_payment_statements(pqxx::connection& c);

}  // namespace op::payments
