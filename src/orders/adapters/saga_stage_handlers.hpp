#pragma once
// The four saga stages as Kafka message handlers, orchestrated by order_saga:
//   orders.placed      -> validate  -> orders.validated   (or orders.failed)
//   orders.validated   -> reserve   -> inventory.reserved (or orders.failed)
//   inventory.reserved -> pay       -> payments.processed (or release, orders.failed)
//   payments.processed -> confirm   -> orders.confirmed
// Each handler applies its step in one PostgreSQL transaction that also records the event id
// as processed (a redelivered event changes nothing), locks the saga row, asks the state
// machine, carries out its commands and writes the next events to the outbox.
//
// Handlers run on the consumer's strands; their blocking database work runs on the blocking
// pool, the payment call asynchronously on the gateway's own connections.

#include <atomic>
#include <functional>
#include <thread>

#include "orders/domain/order_saga.hpp"
#include "payments/app/ports.hpp"
#include "platform/kafka/partitioned_consumer.hpp"
#include "platform/pg/connection_pool.hpp"

namespace op::orders {

struct saga_topics {
  std::string order_validated;
  std::string inventory_reserved;
  std::string payment_processed;
  std::string order_confirmed;
  std::string order_failed;
};

class saga_stage_handlers {
 public:
  saga_stage_handlers(pg::connection_pool& pool, asio::thread_pool& blocking,
                      payments::payment_gateway& gateway, saga_topics topics);

  static void prepare_statements(pqxx::connection& connection);

  asio::awaitable<void> validate(const kafka::consumed_message& message);
  asio::awaitable<void> reserve(const kafka::consumed_message& message);
  asio::awaitable<void> pay(const kafka::consumed_message& message);
  asio::awaitable<void> confirm(const kafka::consumed_message& message);

  // Sends the refunds that cancellations requested (payments.refund_state = 'PENDING'),
  // until stop_refunds(); a refund of an order never charged is a no-op at the gateway.
  void start_refunds(asio::io_context& ioc);
  void stop_refunds();

  struct saga_row;
  // Decides the step's outcome inside the transaction; nullopt: nothing to do.
  using step_effect = std::function<std::optional<saga_event>(pqxx::work& tx, const saga_row& row)>;

 private:
  struct envelope_fields {
    std::string event_id;
    std::string order_id;
  };
  static std::optional<envelope_fields> decode(const kafka::consumed_message& message);

  asio::awaitable<void> run_step(const char* consumer, const kafka::consumed_message& message,
                                 const step_effect& effect);
  // Runs `work` on the blocking pool until it succeeds or fails for a reason other than the
  // database being unavailable; false in that case.
  asio::awaitable<bool> retry_transient(const char* consumer, const std::string& order_id,
                                        std::function<void()>& work);
  // `outcome` is set to applied, duplicate or rejected for the metrics.
  void apply_step(const char* consumer, const envelope_fields& envelope, const step_effect& effect,
                  std::string& outcome);
  void carry_out(pqxx::work& tx, const std::string& order_id, const std::string& trace_id,
                 const saga_transition& transition);

  pg::connection_pool& pool_;
  asio::thread_pool& blocking_;
  payments::payment_gateway& gateway_;
  const saga_topics topics_;
  std::atomic<bool> refunds_stopping_{false};
  std::thread refunds_;
};

}  // namespace op::orders
