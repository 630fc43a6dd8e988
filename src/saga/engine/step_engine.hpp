#pragma once
// The engine that runs the saga's steps as Kafka message handlers. A step (declared with
// add_stage by the composition root; each business area provides its own) decides an order's
// outcome; the engine does everything around it, the same way for every step:
// - it applies the step in one PostgreSQL transaction that also records the event id as
//   processed (a redelivered event changes nothing), locks the saga row, asks the state
//   machine (order_saga), carries out its commands and writes the next events to the outbox;
// - group commit: the messages of a stage that arrive while one of its transactions runs are
//   applied together in the next, with one statement per kind of work for all of them (claim,
//   lock and read; write; outbox; the parts the steps gather), so a busy stage makes fewer
//   round trips per message. A batch that fails runs again one message at a time, so a message
//   that cannot be applied fails alone and is handled as below;
// - compensations and finalizers the state machine asks for run through the handlers the
//   areas registered with on_command, in the same transaction.
//
// Failures:
// - PostgreSQL unavailable: the step waits and runs again, however long it takes; its offset
//   is not committed meanwhile, so a restart runs it again too.
// - serialization failure or deadlock: run again in place, app.retry.* times, then as below.
// - a permanent error (a bug, a constraint violation) or an undecodable message: the message
//   is dead-lettered and the saga compensated (FAILED), and the partition flows on.
// - a step failing transiently (the payment gateway): the step writes it to stage_retries
//   (schedule_retry) and the retry scheduler runs it again after the backoff, so other orders
//   are not held up and a restart keeps the retry.
// - a saga that sits in one step past that step's deadline is compensated by expire_overdue,
//   which the deadline sweeper calls (on any replica, also right after a restart).
//
// Handlers run on the consumer's strands; their blocking database work runs on the blocking
// pool.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "orders/adapters/dead_letters.hpp"
#include "orders/app/ports.hpp"
#include "orders/domain/order_saga.hpp"
#include "orders/domain/retry_policy.hpp"
#include "platform/kafka/partitioned_consumer.hpp"
#include "platform/pg/connection_pool.hpp"
#include "platform/runtime/batcher.hpp"
#include "saga/engine/saga_row.hpp"
#include "saga/engine/transaction_scope.hpp"

namespace op::saga {

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

struct engine_settings {
  saga_topics topics;
  orders::retry_policy retry;
  saga_deadlines deadlines;
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

// What a step's decision adds to its transaction besides the saga's transition.
struct step_context {
  transaction_scope& scope;
  std::string outcome = "skipped";  // for the metrics: applied, duplicate, rejected, ...
};

// Decides the step's outcome for one order inside the batch's transaction; nullopt: nothing
// to do. May set the metrics outcome (default "skipped" without an event).
using step_effect =
    std::function<std::optional<orders::saga_event>(const saga_row& row, step_context& step)>;

// Runs one message of a stage, or a retry of it (`retry` set), usually with run_step.
using stage_runner =
    std::function<asio::awaitable<void>(const kafka::consumed_message&, const stage_retry*)>;

// Carries out one of the state machine's commands for an order in the scope's transaction.
using command_handler = std::function<void(transaction_scope& scope, const saga_row& row)>;

class step_engine final : public orders::order_cancellation {
 public:
  step_engine(pg::connection_pool& pool, asio::thread_pool& blocking,
              const orders::dead_letter_queue& dead_letters, engine_settings settings);

  static void prepare_statements(pqxx::connection& connection);

  // Declares a stage: the consumer of its topic calls handle(name, ...), a due retry of it
  // runs `runner` again. Before the consumers start.
  void add_stage(const std::string& name, stage_runner runner);
  // Who carries out `kind` (release, commit, refund). Before the consumers start.
  void on_command(orders::command_kind kind, command_handler handler);
  // Whether a refund was requested for the order: a repeated cancel answers as the first did.
  using refund_query = std::function<bool(pqxx::work& tx, const std::string& order_id)>;
  void on_refund_query(refund_query query) { refund_requested_ = std::move(query); }

  // The message handler of a declared stage.
  asio::awaitable<void> handle(std::string_view stage, const kafka::consumed_message& message);

  // For the steps: applies `effect` to the message's order in a batch of the stage's
  // transactions, with everything the header describes.
  asio::awaitable<void> run_step(std::string_view stage, const kafka::consumed_message& message,
                                 const step_effect& effect, const stage_retry* retry);
  // Writes the message to stage_retries, to run again after `delay`, in the step's transaction.
  void schedule_retry(pqxx::work& tx, std::string_view stage, const std::string& order_id,
                      const kafka::consumed_message& message, const stage_retry* retry,
                      int attempts, const std::string& error_class, const std::string& error,
                      std::chrono::milliseconds delay);
  // Runs `work` on the blocking pool until it succeeds, waiting out PostgreSQL being
  // unavailable; rethrows any other error. False when abandoned at shutdown.
  asio::awaitable<bool> while_unavailable(std::string_view stage, const std::string& subject,
                                          std::function<void()>& work);
  const orders::retry_policy& retry_policy() const { return settings_.retry; }
  const orders::dead_letter_queue& dead_letters() const { return dead_letters_; }
  // Uniform in [0, 1), for backoff jitter.
  static double unit_random();

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
  orders::cancellation cancel(const std::string& order_id) override;

  // After the consumers stopped: steps still waiting for PostgreSQL give up without
  // committing anything; their messages are delivered again after a restart.
  void abandon_waiting_steps() { abandoning_ = true; }

 private:
  // One message's step, waiting for or running in a batch of its stage. The step marks its
  // message as taken, so a redelivery changes nothing: by recording the event id for its
  // consumer or, for a scheduled retry, by deleting the retry's row.
  struct step_job {
    std::string_view stage;
    std::string order_id;
    std::string event_id;
    const stage_retry* retry;
    const step_effect* effect;
    std::string outcome = "skipped";
  };
  struct stage {
    stage_runner runner;
    std::unique_ptr<runtime::batcher<step_job>> batcher;
  };
  // What a transaction writes once every step has decided.
  struct step_writes;
  struct lock_request {
    std::string_view order_id;
    std::optional<std::string_view> event_id;  // claimed for the stage when set
  };
  struct locked_saga;

  asio::awaitable<bool> while_unavailable(std::string_view stage, const std::string& subject,
                                          std::function<asio::awaitable<void>()>& attempt);
  stage& stage_named(std::string_view name);
  // Applies the steps of one batch in one transaction and sets each job's outcome.
  void apply_steps(const std::vector<step_job*>& jobs);
  void apply_steps_once(pqxx::connection& c, const std::vector<step_job*>& jobs, bool under_lock);
  // Dead-letters the message and compensates its saga (FAILED), in one transaction.
  void give_up(std::string_view stage, const kafka::consumed_message& message,
               const std::optional<std::string>& order_id, const std::string& error_class,
               const std::string& error, int attempts, const stage_retry* retry);
  std::optional<saga_row> lock_saga(pqxx::work& tx, const std::string& order_id);
  // Claims the events given for `stage` (none when empty) and locks and reads the sagas with
  // their orders, in order id order, all in one statement. Keyed by order id.
  std::map<std::string, locked_saga> claim_and_lock_sagas(
      pqxx::work& tx, std::string_view stage, const std::vector<lock_request>& requests);
  // Applies `event` to the locked saga; what it changes is added to `writes`, the commands
  // are carried out in the scope. Returns the outcome.
  std::string transition(transaction_scope& scope, std::string_view stage, const saga_row& row,
                         const orders::saga_event& event, step_writes& writes);
  // Writes the sagas and their events, runs the scope's parts and commits. `writes` refers
  // to rows that must still be alive.
  void write_and_commit(transaction_scope& scope, step_writes& writes);
  const std::string& topic_name(orders::topic_kind topic) const;

  pg::connection_pool& pool_;
  asio::thread_pool& blocking_;
  const orders::dead_letter_queue& dead_letters_;
  const engine_settings settings_;
  std::map<std::string, stage, std::less<>> stages_;
  std::map<orders::command_kind, command_handler> commands_;
  refund_query refund_requested_;
  std::atomic<bool> abandoning_{false};
};

}  // namespace op::saga
