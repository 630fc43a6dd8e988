#pragma once
// Saga steps. A program built on the pipeline declares its saga as an ordered list of steps;
// order-pipeline's own four (validate, reserve, pay, confirm) are declared with these same
// types. The engine runs every step the same way, so a shop's step has every guarantee the
// built-in ones have:
// - it consumes the event of the step before it (the first step: orders.placed) and, once it
//   succeeded, publishes its own event to its topic, through the transactional outbox;
// - `action` runs inside the engine's PostgreSQL transaction, which locks the saga and stores
//   its next state: whatever the action writes with ctx.transaction() commits with it, or not
//   at all. A redelivered event changes nothing: `action` runs only while the saga waits for
//   the step (and, while a retry of it is pending, only from that retry);
// - messages arriving together are applied together (one transaction for many orders), with
//   one order's messages in order;
// - a transient failure (decision::retry_later) is retried durably, after the step's own
//   backoff, without holding other orders up; when the attempts run out, the message is
//   dead-lettered (listed and replayed through the admin API) and the saga gives the step up;
// - a step the saga waits for longer than its deadline is given up by the deadline sweeper;
// - when a later step rejects the order, fails or times out, or the customer cancels, the
//   compensations of the steps that succeeded run in reverse order, in one transaction;
// - metrics carry the step's name as their `stage` label; logs carry the order's trace id.
//
// An exception from `action` is a bug or bad data, not a transient failure: the message is
// dead-lettered and the order ends FAILED (a PostgreSQL serialization failure or deadlock is
// retried in place first). Return decision::retry_later for what is worth trying again.

// clang-format off
#include <utility>  // first: Boost.Asio's awaitable.hpp uses std::exchange without including it
#include <boost/asio/awaitable.hpp>
// clang-format on

#include <any>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <pqxx/transaction>
#include <stdexcept>
#include <string>
#include <typeindex>
#include <vector>

#include "order_pipeline/order.hpp"

namespace order_pipeline {

// What a step decided for one order.
struct decision {
  enum class kind {
    proceed,      // the step succeeded: the saga moves on to the next step
    reject,       // a business "no": the order is cancelled with `reason`, compensations run
    retry_later,  // a transient failure: run again after the step's backoff
    wait,         // run again after `wait`, not counted as a failed attempt (an open circuit)
    nothing,      // nothing to do
  };
  kind outcome = kind::nothing;
  std::string reason;  // reject: the order's cancel reason, [A-Z][A-Z0-9_]*
  std::string detail;  // why, in words: for operators and the order's view
  std::chrono::milliseconds wait{0};

  static decision proceed() { return {kind::proceed, {}, {}, {}}; }
  static decision reject(std::string reason, std::string detail) {
    return {kind::reject, std::move(reason), std::move(detail), {}};
  }
  static decision retry_later(std::string error) {
    return {kind::retry_later, {}, std::move(error), {}};
  }
  static decision wait_for(std::chrono::milliseconds delay, std::string why) {
    return {kind::wait, {}, std::move(why), delay};
  }
  static decision nothing() { return {}; }
};

// When a step's transient failures are tried again: after backoff, backoff * multiplier,
// backoff * multiplier^2, ... each stretched or shrunk by up to `jitter`; after `max_retries`
// runs again (as app.retry.max-attempts counts them) the step is given up.
struct retry_policy {
  int max_retries = 3;
  std::chrono::milliseconds backoff{1000};
  double multiplier = 2.0;
  double jitter = 0.2;
};

// Something the orders of one transaction share, made on first use by step_context::shared:
// reads made once for all of them, writes made together right before the commit.
class transaction_part {
 public:
  virtual ~transaction_part() = default;
  // After the sagas and their events are written, right before the commit: writes to hot
  // rows go last, so their locks are held briefly.
  virtual void before_commit(pqxx::work&) {}
};

// A decision made without a lock turned out wrong at the write (another transaction took the
// last units in between): the engine runs the step again for this order alone, with
// step_context::under_lock() true.
struct decide_again_under_lock : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What a step's action, compensation or finalizer works with.
class step_context {
 public:
  virtual ~step_context() = default;

  // The order, as it was before this step.
  virtual const order& current_order() const = 0;
  // The engine's transaction: write the step's effects with it; never commit or abort it.
  // Its connection plans a statement once, without its parameters' values (PostgreSQL's
  // plan_cache_mode = force_generic_plan); a statement whose best plan depends on them runs
  // after `SET LOCAL plan_cache_mode = force_custom_plan`.
  virtual pqxx::work& transaction() = 0;
  // The saga waits for this step. False only for a step whose effect may land late, when its
  // saga was cancelled meanwhile: the engine refuses its success and compensates it.
  virtual bool awaited() const = 0;
  // Failed runs of this step for this order before this one (0 on the first run).
  virtual int earlier_failures() const = 0;
  // What `prepare` returned, when the step has one.
  virtual const std::any& prepared() const = 0;
  // The orders of this transaction, this one included: for a shared part that reads once for
  // all of them.
  virtual std::vector<const order*> transaction_orders() const = 0;
  // The run after decide_again_under_lock.
  virtual bool under_lock() const = 0;

  // The transaction's Part (a transaction_part made with Part(*this) on first use), shared by
  // every order of the transaction.
  template <class Part>
  Part& shared() {
    if (auto* existing = find_part(typeid(Part)))
      return static_cast<Part&>(*existing);
    return static_cast<Part&>(add_part(typeid(Part), std::make_unique<Part>(*this)));
  }

 protected:
  virtual transaction_part* find_part(std::type_index type) = 0;
  virtual transaction_part& add_part(std::type_index type,
                                     std::unique_ptr<transaction_part> part) = 0;
};

struct step {
  // [a-z][a-z0-9_-]*, unique in the saga: the stage label, the step's retries and dead
  // letters, and app.saga.deadline.<name>.
  std::string name;
  // Where its success event goes; app.kafka.topics.<name>.name overrides it, and the topic
  // is created at start like the others. The next step consumes it.
  std::string topic;
  std::string event_type;  // that event's eventType, e.g. "OrderScreened"
  // The order status once the step succeeded; empty keeps the status as it was (the public
  // list of statuses stays the same).
  std::string status;

  // Decides, for one order, inside the engine's transaction.
  std::function<decision(step_context&)> action;
  // Optional: work outside the transaction before `action` (a remote call, such as the
  // payment), run only when the saga waits for this step and the message is new. Its result
  // reaches `action` as ctx.prepared().
  std::function<boost::asio::awaitable<std::any>(const order&)> prepare;
  // Undoes the step's effect when a later step rejects the order, fails or times out, or the
  // customer cancels: in that transaction, newest step first. Must be idempotent.
  std::function<void(step_context&)> compensation;
  // Runs when the whole saga completes (the reservation becomes a sale).
  std::function<void(step_context&)> finalizer;

  // The step's effect may land after the saga gave it up (a remote call that timed out):
  // giving it up then compensates it too, and a success that arrives after a cancel is
  // compensated at once. Needs a compensation.
  bool may_land_late = false;
  // The compensation completes later, outside the transaction (a refund sent by a worker): a
  // customer's cancel that causes it answers 202 instead of 200.
  bool compensation_completes_later = false;

  // Cancel reasons: when the step's deadline passes (default "<NAME>_TIMEOUT") and when its
  // retries run out (empty: the order ends FAILED).
  std::string timeout_reason;
  std::string failure_reason;
  // The reasons `action` may reject with: their metrics series exist from the start.
  std::vector<std::string> rejection_reasons;

  // Defaults: app.retry.* and app.saga.deadline.<name> (300 s for a step of a shop's own).
  std::optional<retry_policy> retry;
  std::optional<std::chrono::milliseconds> deadline;
};

}  // namespace order_pipeline
