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
// Steps are group-committed: the messages of a stage that arrive while one of its
// transactions runs are applied together in the next, with one statement per kind of work
// for all of them (claim, lock and read; write; outbox; stock), so a busy stage makes fewer
// round trips per message. A batch that fails runs again one message at a time, so a
// message that cannot be applied fails alone and is handled as below.
//
// Failures:
// - PostgreSQL unavailable: the step waits and runs again, however long it takes; its offset
//   is not committed meanwhile, so a restart runs it again too.
// - serialization failure or deadlock: run again in place, app.retry.* times, then as below.
// - a permanent error (a bug, a constraint violation) or an undecodable message: the message
//   is dead-lettered and the saga compensated (FAILED), and the partition flows on.
// - the payment gateway failing transiently: the step is written to stage_retries and run
//   again by the retry scheduler after the backoff (or after the circuit breaker's open time,
//   which does not count as an attempt), so other orders are not held up and a restart keeps
//   the retry; when the retries are used up the order is cancelled (PAYMENT_FAILED, stock
//   released, refund requested) and the message dead-lettered.
// - a saga that sits in one step past that step's deadline is compensated by expire_overdue,
//   which the deadline sweeper calls (on any replica, also right after a restart).
//
// Handlers run on the consumer's strands; their blocking database work runs on the blocking
// pool, the payment call asynchronously on the gateway's own connections.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "orders/adapters/dead_letters.hpp"
#include "orders/app/ports.hpp"
#include "orders/domain/order_saga.hpp"
#include "orders/domain/retry_policy.hpp"
#include "payments/app/ports.hpp"
#include "platform/kafka/partitioned_consumer.hpp"
#include "platform/pg/connection_pool.hpp"
#include "platform/runtime/batcher.hpp"

namespace op::orders {

struct saga_topics {
  std::string order_validated;
  std::string inventory_reserved;
  std::string payment_processed;
  std::string order_confirmed;
  std::string order_failed;
};

struct saga_deadlines {
  std::chrono::milliseconds validation{300000};
  std::chrono::milliseconds reservation{300000};
  std::chrono::milliseconds payment{120000};
  std::chrono::milliseconds confirmation{300000};
};

struct saga_settings {
  saga_topics topics;
  retry_policy retry;
  saga_deadlines deadlines;
  // A refund that finds nothing captured is repeated late_charge_checks times, after
  // 2, 4, 8, ... times late_charge_wait (the gateway call timeout): a charge whose answer
  // we never got may still be captured meanwhile.
  std::chrono::milliseconds late_charge_wait{5000};
  int late_charge_checks = 4;
  // Group commit: at most this many messages per transaction, and this many transactions of
  // one stage at a time.
  std::size_t batch_size = 64;
  std::size_t parallel_batches = 2;
};

// A step due to run again, as the retry scheduler claimed it from stage_retries.
struct stage_retry {
  std::int64_t id = 0;
  std::string stage;
  int attempts = 0;  // failed runs so far
  std::string first_failure_at;
  kafka::consumed_message message;
};

class saga_stage_handlers final : public order_cancellation {
 public:
  saga_stage_handlers(pg::connection_pool& pool, asio::thread_pool& blocking,
                      payments::payment_gateway& gateway, const dead_letter_queue& dead_letters,
                      saga_settings settings);

  static void prepare_statements(pqxx::connection& connection);

  asio::awaitable<void> validate(const kafka::consumed_message& message);
  asio::awaitable<void> reserve(const kafka::consumed_message& message);
  asio::awaitable<void> pay(const kafka::consumed_message& message);
  asio::awaitable<void> confirm(const kafka::consumed_message& message);

  // Blocking, for the background jobs. Claims up to `limit` due retries of `stages` for a
  // while (another replica takes them over if this one dies running them).
  std::vector<stage_retry> claim_due_retries(int limit, const std::vector<std::string>& stages);
  // Runs a claimed retry; must not throw.
  asio::awaitable<void> run_retry(const stage_retry& retry);
  // Compensates up to `limit` sagas past their step's deadline; returns how many.
  int expire_overdue(int limit);
  // Retries waiting in stage_retries, for the metrics.
  std::int64_t pending_retries();

  // A customer's cancel (order_cancellation). Blocking, for the HTTP handlers' pool.
  cancellation cancel(const std::string& order_id) override;

  // Sends the refunds that cancellations requested (payments.refund_state = 'PENDING'),
  // until stop_refunds(); a refund of an order never charged is a no-op at the gateway.
  void start_refunds(asio::io_context& ioc);
  void stop_refunds();

  // After the consumers stopped: steps still waiting for PostgreSQL give up without
  // committing anything; their messages are delivered again after a restart.
  void abandon_waiting_steps() { abandoning_ = true; }

  struct saga_row;
  class batch_reads;

  // A change to the stock of every product of an order.
  enum class stock_change { reserve, release, commit };

  // What one step's transaction does besides the saga row, filled in by its effect and its
  // transition.
  struct step_context {
    std::string outcome = "skipped";  // for the metrics: applied, duplicate, rejected, ...
    // Product rows are the pipeline's hot rows: every order of a product writes the same row.
    // Their changes are therefore applied last, right before the commit, so their locks are
    // held for two round trips. A reservation is taken after a plain read saw enough stock;
    // if the stock ran out in between, the step runs again with lock_stock_first set and
    // decides under the lock.
    bool lock_stock_first = false;
    std::vector<stock_change> stock;
    // Reads shared by every step of the batch, one statement each for all of them.
    batch_reads* reads = nullptr;
  };

  // Decides the step's outcome inside the transaction; nullopt: nothing to do. May set the
  // metrics outcome (default "skipped" without an event).
  using step_effect = std::function<std::optional<saga_event>(pqxx::work& tx, const saga_row& row,
                                                              step_context& step)>;

 private:
  // One message's step, waiting for or running in a batch of its stage. The step marks its
  // message as taken, so a redelivery changes nothing: by recording the event id for its
  // consumer or, for a scheduled retry, by deleting the retry's row.
  struct step_job {
    const char* consumer;
    std::string order_id;
    std::string event_id;
    const stage_retry* retry;
    const step_effect* effect;
    std::string outcome = "skipped";
  };
  // What a batch's transaction writes once every step has decided.
  struct step_writes;

  asio::awaitable<void> run_step(const char* consumer, const kafka::consumed_message& message,
                                 const step_effect& effect, const stage_retry* retry);
  asio::awaitable<void> pay_step(const kafka::consumed_message& message, const stage_retry* retry);
  // Runs `attempt` until it succeeds, waiting out PostgreSQL being unavailable; rethrows any
  // other error. False when abandoned at shutdown.
  asio::awaitable<bool> while_unavailable(const char* consumer, const std::string& subject,
                                          std::function<asio::awaitable<void>()>& attempt);
  // The same for blocking work, run on the blocking pool.
  asio::awaitable<bool> while_unavailable(const char* consumer, const std::string& subject,
                                          std::function<void()>& work);
  runtime::batcher<step_job>& batcher_for(const char* consumer);
  // Applies the steps of one batch in one transaction and sets each job's outcome.
  void apply_steps(const std::vector<step_job*>& jobs);
  void apply_steps_once(pqxx::connection& c, const std::vector<step_job*>& jobs,
                        bool lock_stock_first);
  // Dead-letters the message and compensates its saga (FAILED), in one transaction.
  void give_up(const char* consumer, const kafka::consumed_message& message,
               const std::optional<std::string>& order_id, const std::string& error_class,
               const std::string& error, int attempts, const stage_retry* retry);
  void schedule_retry(pqxx::work& tx, const char* consumer, const std::string& order_id,
                      const kafka::consumed_message& message, const stage_retry* retry,
                      int attempts, const std::string& error_class, const std::string& error,
                      std::chrono::milliseconds delay);
  std::optional<saga_row> lock_saga(pqxx::work& tx, const std::string& order_id);
  struct lock_request {
    std::string_view order_id;
    std::optional<std::string_view> event_id;  // claimed for `consumer` when set
  };
  struct locked_saga;
  // Claims the events given for `consumer` (may be null) and locks and reads the sagas with
  // their orders, in order id order, all in one statement. Keyed by order id.
  std::map<std::string, locked_saga> claim_and_lock_sagas(
      pqxx::work& tx, const char* consumer, const std::vector<lock_request>& requests);
  // Applies `event` to the locked saga; what it changes is added to `writes`, but for a
  // refund request, written at once. Returns the outcome.
  std::string transition(pqxx::work& tx, const char* consumer, const saga_row& row,
                         const saga_event& event, step_writes& writes);
  // Writes the sagas, their events and the stock changes, and commits. Throws stock_ran_out
  // when a reservation found less stock than the read before it. `writes` refers to rows
  // that must still be alive.
  void write_and_commit(pqxx::work& tx, step_writes& writes);
  const std::string& topic_name(topic_kind topic) const;
  double unit_random();

  pg::connection_pool& pool_;
  asio::thread_pool& blocking_;
  payments::payment_gateway& gateway_;
  const dead_letter_queue& dead_letters_;
  const saga_settings settings_;
  std::map<std::string, std::unique_ptr<runtime::batcher<step_job>>, std::less<>> batchers_;
  std::atomic<bool> abandoning_{false};
  std::atomic<bool> refunds_stopping_{false};
  std::thread refunds_;
};

}  // namespace op::orders
