#pragma once
// The engine that runs the saga's steps as Kafka message handlers. A step (declared with
// add_stage by the composition root; each business area provides its own) decides an order's
// outcome; the engine does everything around it, the same way for every step:
// - it applies the step in one PostgreSQL transaction that locks the order (an advisory lock
//   per order; the order's row holds its saga, whose state makes a redelivered event change
//   nothing), asks the generic state machine (saga/domain) with the declared step list, carries
//   out its commands (the steps' compensations and finalizers) and writes the next events to
//   the outbox;
// - group commit: the messages of a stage that arrive while one of its transactions runs are
//   applied together in the next, with one statement per kind of work for all of them (lock;
//   read; write; outbox; the parts the steps gather), so a busy stage makes fewer
//   round trips per message. A batch that fails runs again one message at a time, so a message
//   that cannot be applied fails alone and is handled as below;
// - a step decides (step_decision): proceed, reject with a reason, retry later (durably, in
//   stage_retries, with the step's retry policy; when the attempts run out the message is
//   dead-lettered and the saga gives the step up), or wait without using up an attempt;
// - orders in flight across a release that changed the steps keep the list they started with
//   (saga_step_lists): a step the saga's list lacks passes the message on to its own topic
//   unchanged, a step the program no longer declares is skipped (saga/domain/saga_machine.hpp).
//
// Failures:
// - PostgreSQL unavailable: the step waits and runs again, however long it takes; its offset
//   is not committed meanwhile, so a restart runs it again too.
// - serialization failure or deadlock: run again in place, app.retry.* times, then as below.
// - a permanent error (a bug, a constraint violation) or an undecodable message: the message
//   is dead-lettered and the saga compensated (FAILED), and the partition flows on.
// - a step failing transiently (the payment gateway): written to stage_retries and run again
//   by the retry scheduler after the backoff, so other orders are not held up and a restart
//   keeps the retry.
// - a saga that sits in one step past that step's deadline is compensated by expire_overdue,
//   which the deadline sweeper calls (on any replica, also right after a restart).
//
// Handlers run on the consumer's strands; their blocking database work runs on the blocking
// pool.

#include <any>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "order_pipeline/step.hpp"
#include "orders/adapters/dead_letters.hpp"
#include "orders/app/ports.hpp"
#include "orders/domain/retry_policy.hpp"
#include "platform/kafka/partitioned_consumer.hpp"
#include "platform/pg/connection_pool.hpp"
#include "platform/runtime/batcher.hpp"
#include "saga/domain/saga_definition.hpp"
#include "saga/engine/saga_row.hpp"
#include "saga/engine/transaction_scope.hpp"

namespace op::outbox {
class after_commit_publisher;
}

namespace op::saga {

struct engine_settings {
  std::string order_placed_topic = "orders.placed";
  std::string order_failed_topic = "orders.failed";
  // How long an order may wait at a step before republish_stalled sends the event that
  // starts the step again (it was sent without an outbox row and may be lost).
  std::chrono::milliseconds republish_after{30000};
  // Group commit: at most this many messages per transaction, and this many transactions of
  // one stage at a time. One: under load, what arrives while a stage's transaction runs waits
  // for the next one, so batches grow instead of transactions multiplying; at 500 orders/s
  // that took the end-to-end p99 from 146 to 113 ms and the POST p99 from 26 to 17 ms (two
  // at a time only added statements and lock waits on a saturated machine).
  std::size_t batch_size = 64;
  std::size_t parallel_batches = 1;
  // Runs of a step's transaction after a serialization failure or deadlock.
  orders::retry_policy conflict_retry;
};

// A step due to run again, as the retry scheduler claimed it from stage_retries.
struct stage_retry {
  std::int64_t id = 0;
  std::string stage;
  int attempts = 0;  // failed runs so far
  std::string first_failure_at;
  kafka::consumed_message message;
};

using step_decision = order_pipeline::decision;

// What the engine hands a step's decision besides the saga.
struct step_context {
  transaction_scope& scope;
  // The saga waits for this step. False: the step's success would be refused (late or
  // duplicated), except for a step whose effect may land late, which is then compensated.
  bool awaited = false;
  int earlier_failures = 0;  // failed runs before this one (retries)
  const std::any* prepared;  // what the step's prepare returned; empty without one
};

// Decides the step's outcome for one order inside the batch's transaction.
using step_effect = std::function<step_decision(const saga_row& row, step_context& step)>;

class step_engine final : public orders::order_cancellation {
 public:
  step_engine(pg::connection_pool& pool, asio::thread_pool& blocking,
              const orders::dead_letter_queue& dead_letters, engine_settings settings);
  // Publishes each transaction's events right after its commit (else the relay does).
  void publish_after_commit_with(outbox::after_commit_publisher& publisher) {
    publisher_ = &publisher;
  }

  static void prepare_statements(pqxx::connection& connection);

  // Declares the next step of the saga, with its topic, event type, retry policy, deadline and
  // timeout reason filled in (the composition root resolves them from the configuration).
  // Before seal().
  void declare(order_pipeline::step step);
  // Checks the declared list (saga_definition's rules; throws std::invalid_argument naming
  // the step and the rule) and makes it the saga's.
  void seal();
  const saga_definition& definition() const { return *definition_; }
  // The topic a declared step publishes its success to.
  const std::string& topic_of(std::string_view step) const;
  // Records the sealed step list in saga_step_lists, once per distinct list; the id a new
  // saga refers to.
  int register_step_list(pqxx::connection& connection) const;

  // Orders in flight under another release may wait after a step this program does not
  // declare: its topic (from saga_step_lists) must still be consumed, by the next step of
  // that list that this program declares, or those orders would stall until their deadline.
  struct route {
    std::string topic;
    std::string step;
  };
  std::vector<route> routes_for_undeclared_steps(pqxx::connection& connection) const;

  // Whether a refund was requested for the order: a repeated cancel answers as the first did.
  using refund_query = std::function<bool(pqxx::work& tx, const std::string& order_id)>;
  void on_refund_query(refund_query query) { refund_requested_ = std::move(query); }

  // The message handler of a declared step's stage.
  asio::awaitable<void> handle(std::string_view stage, const kafka::consumed_message& message);

  // Runs `work` on the blocking pool until it succeeds, waiting out PostgreSQL being
  // unavailable; rethrows any other error. False when abandoned at shutdown.
  asio::awaitable<bool> while_unavailable(std::string_view stage, const std::string& subject,
                                          std::function<void()>& work);
  // Uniform in [0, 1), for backoff jitter.
  static double unit_random();

  // Blocking, for the background jobs. Claims up to `limit` due retries of `stages` for a
  // while (another replica takes them over if this one dies running them).
  std::vector<stage_retry> claim_due_retries(int limit, const std::vector<std::string>& stages);
  // Runs a claimed retry; must not throw. A retry of a step this program does not declare
  // runs as the step its saga waits for now, when `runnable` (the stages this replica runs)
  // has it.
  asio::awaitable<void> run_retry(const stage_retry& retry,
                                  const std::vector<std::string>& runnable);
  // Compensates up to `limit` sagas past their step's deadline; returns how many.
  int expire_overdue(int limit);
  // Sends again, through the outbox, the event that starts the awaited step of up to `limit`
  // running orders waiting at it longer than republish_after without a pending retry: a running
  // saga's events are sent without an outbox row, so this is how one lost in a crash or an
  // outage is found. An order is sent again at most once per republish_after by a replica;
  // one replica at a time does it. Returns how many. For the sweeper's thread only.
  int republish_stalled(int limit);
  // Retries waiting in stage_retries, for the metrics.
  std::int64_t pending_retries();

  // A customer's cancel (order_cancellation). Blocking, for the HTTP handlers' pool.
  orders::cancellation cancel(const std::string& order_id) override;

  // After the consumers stopped: steps still waiting for PostgreSQL give up without
  // committing anything; their messages are delivered again after a restart.
  void abandon_waiting_steps() { abandoning_ = true; }

 private:
  // One message's step, waiting for or running in a batch of its stage. A redelivery changes
  // nothing: the saga's state shows the step done, and a scheduled retry's row is taken by the
  // one run it allows (is_redelivery).
  struct step_job {
    std::string_view stage;
    std::string order_id;
    const kafka::consumed_message* message;
    const stage_retry* retry;
    const step_effect* effect;
    std::string outcome = "skipped";
  };
  // Whether a message's order waits for a step that prepares (calls out): asked for the
  // messages of a stage together, in one statement.
  struct peek_job {
    std::string_view order_id;
    const stage_retry* retry;
    std::optional<orders::order_view> order;  // the order (without its items) when it waits
  };
  struct declared_step {
    order_pipeline::step spec;
    step_definition definition;
    orders::retry_policy retry;
    step_effect decide;  // spec.action, with the public step_context
    std::unique_ptr<runtime::batcher<step_job>> batcher;
    std::unique_ptr<runtime::batcher<peek_job>> peeks;  // for a step that prepares
  };
  // What a transaction writes once every step has decided.
  struct step_writes;
  struct locked_saga;

  asio::awaitable<bool> while_unavailable(std::string_view stage, const std::string& subject,
                                          std::function<asio::awaitable<void>()>& attempt);
  // Runs one message of the step (or a retry of it): prepare when the step has one, then the
  // step's decision in a batch of its transactions.
  asio::awaitable<void> run(declared_step& step, const kafka::consumed_message& message,
                            const stage_retry* retry);
  // Applies `effect` to the message's order in a batch of the stage's transactions, with
  // everything the header describes.
  asio::awaitable<void> run_step(std::string_view stage, const kafka::consumed_message& message,
                                 const step_effect& effect, const stage_retry* retry);
  // Blocking. Sets each job's order when its saga waits for `stage` and its message (or
  // retry) was not applied yet: a step that prepares (calls out) only does so then.
  void find_awaiting(std::string_view stage, const std::vector<peek_job*>& jobs);
  declared_step& step_named(std::string_view name);
  const declared_step* find_step(std::string_view name) const;
  // The message of `step` for an order in `state` was applied already, or a pending retry of
  // the step (`retry_pending`, for a message that is not that retry) is what runs it next.
  bool is_redelivery(const declared_step& step, const saga_state& state, bool retry_pending) const;
  // Applies the steps of one batch in one transaction and sets each job's outcome.
  void apply_steps(const std::vector<step_job*>& jobs);
  void apply_steps_once(pqxx::connection& c, const std::vector<step_job*>& jobs, bool under_lock);
  // The saga event a decision means, writing a retry or a dead letter as it needs; nullopt:
  // no event. Sets the job's outcome.
  std::optional<saga_event> event_of(pqxx::work& tx, const declared_step& step, const step_job& job,
                                     const step_decision& decision, int earlier_failures,
                                     std::string& outcome);
  void schedule_retry(pqxx::work& tx, std::string_view stage, const std::string& order_id,
                      const kafka::consumed_message& message, const stage_retry* retry,
                      int attempts, const std::string& error_class, const std::string& error,
                      std::chrono::milliseconds delay);
  // Dead-letters the message and compensates its saga (FAILED), in one transaction.
  void give_up(std::string_view stage, const kafka::consumed_message& message,
               const std::optional<std::string>& order_id, const std::string& error_class,
               const std::string& error, int attempts, const stage_retry* retry);
  std::optional<saga_row> lock_saga(pqxx::work& tx, const std::string& order_id);
  // Locks and reads the sagas with their orders, in order id order, in one statement, with
  // whether a retry of `stage` (none when empty) is pending for each. Keyed by order id.
  std::map<std::string, locked_saga> lock_sagas(pqxx::work& tx, std::string_view stage,
                                                const std::vector<std::string_view>& order_ids);
  // Applies `event` to the locked saga; what it changes is added to `writes`, the commands
  // are carried out in the scope. Returns the outcome.
  std::string transition(transaction_scope& scope, std::string_view caller, const saga_row& row,
                         const saga_event& event, step_writes& writes);
  // Writes the sagas and their events, runs the scope's parts and commits. `writes` refers
  // to rows that must still be alive.
  void write_and_commit(transaction_scope& scope, step_writes& writes);
  // The longest declared deadline: for a saga waiting on a step this program does not declare.
  std::chrono::milliseconds longest_deadline() const;
  // The shortest declared deadline: no saga placed more recently can be overdue.
  std::chrono::milliseconds shortest_deadline() const;

  pg::connection_pool& pool_;
  asio::thread_pool& blocking_;
  const orders::dead_letter_queue& dead_letters_;
  const engine_settings settings_;
  outbox::after_commit_publisher* publisher_ = nullptr;
  std::vector<std::unique_ptr<declared_step>> steps_;  // in saga order
  std::optional<saga_definition> definition_;
  refund_query refund_requested_;
  std::atomic<bool> abandoning_{false};
  // When this replica last looked at each stalled order (republish_stalled): sent its event
  // again, or found no step of this program to send it for.
  std::map<std::string, std::chrono::steady_clock::time_point> republished_;
};

}  // namespace op::saga
