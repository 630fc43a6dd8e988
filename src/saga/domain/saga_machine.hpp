#pragma once
// The generic saga state machine: a declared step list (saga_definition), one saga's persisted
// state and one incoming event give the next state and the commands to carry out in the
// transaction that stores it, or a refusal. It names no business step. Pure and stateless (no
// I/O, no clock), so any thread may call it.
//
// Orders in flight across a change of steps (a release that adds or removes a step):
// - A saga keeps the step list it started with (saga_state::steps) for its whole life.
// - A step of the saga's list that the running definition does not declare is skipped: the saga
//   waits for the next step of its own list that the definition declares. A skipped step never
//   ran, so skipping compensates nothing. When no declared step follows the one that succeeded,
//   that success completes the saga.
// - A step the running definition declares but the saga's list lacks is not the saga's: its
//   events are refused (step_not_in_saga) and is_part_of says false, so the engine passes the
//   message on to the next step instead of running this one.
// - A completed step whose compensation is owed but which the running definition no longer
//   declares (or declares without a compensation) cannot be undone by it: where its
//   compensation would run, the machine emits compensate_by_operator naming the step, which the
//   engine dead-letters for an operator. It is never dropped silently.
// - A running saga whose remaining steps are all undeclared waits for nothing it can receive:
//   awaited_step names the undeclared step so the deadline sweeper still fires, and the deadline
//   then ends the order FAILED (owed compensations run) instead of leaving it stuck.
// The position is stored as a place in the saga's own list; which step it means is resolved
// against the running definition at every call, so replicas of two releases agree on the row.

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "saga/domain/saga_definition.hpp"

namespace op::saga {

inline constexpr std::string_view customer_cancelled_reason = "CUSTOMER_CANCELLED";
inline constexpr std::string_view customer_cancelled_detail = "cancelled at the customer's request";

// One saga row.
struct saga_state {
  // PLACED, a step's status, CONFIRMED, CANCELLED or FAILED.
  std::string status = std::string(placed_status);
  // The step list the saga started with (start()): it keeps it across releases.
  std::vector<std::string> steps;
  // Running: the place in `steps` of the step it waits for (an undeclared one is skipped).
  // CONFIRMED: steps.size(). CANCELLED or FAILED: where it stopped.
  std::size_t position = 0;
  std::string reason;  // non-empty exactly when CANCELLED
  std::string detail;  // why it ended, as free text: decline message, DLQ error
  // Completed steps whose effect stands and has a compensation (the reservation not yet
  // released or sold, the charge not refunded), in the order they completed.
  std::vector<std::string> owed;

  bool operator==(const saga_state&) const = default;
};

// A freshly placed order under `definition`: PLACED, waiting for its first step.
saga_state start(const saga_definition& definition);

// CONFIRMED, CANCELLED or FAILED: no step runs any more and no deadline applies.
bool is_ended(const saga_state& state);

// The state's own invariants, independent of any release's steps: a non-empty list of unique
// step names, a position inside it (at its end exactly when CONFIRMED), a reason exactly when
// CANCELLED, and owed steps of the list, each once, in list order, before the position and none
// left once CANCELLED or FAILED. Every state apply returns is consistent; apply refuses to work
// from one that is not.
bool is_consistent(const saga_state& state);

// The step is in the saga's own list. False: the message is not this saga's to handle at that
// step, and the engine passes it on.
bool is_part_of(const saga_state& state, std::string_view step);

// The step whose outcome the saga waits for under `definition` (the deadline sweeper's step);
// nullopt once ended.
std::optional<std::string> awaited_step(const saga_definition& definition, const saga_state& state);

// The outcomes the engine reports. Details are free text for operators and the order's view.
namespace events {
struct step_succeeded {
  std::string step;
  bool operator==(const step_succeeded&) const = default;
};
// A business "no" (OUT_OF_STOCK, PAYMENT_DECLINED): the step did nothing to undo.
struct step_rejected {
  std::string step;
  std::string reason;  // [A-Z][A-Z0-9_]*, the order's cancel reason
  std::string detail;
  bool operator==(const step_rejected&) const = default;
};
// Transient failures until the step's retries ran out.
struct step_gave_up {
  std::string step;
  std::string detail;
  bool operator==(const step_gave_up&) const = default;
};
// The awaited step's deadline passed.
struct deadline_expired {
  bool operator==(const deadline_expired&) const = default;
};
// A message of the saga was dead-lettered: the order ends FAILED.
struct processing_failed {
  std::string detail;
  bool operator==(const processing_failed&) const = default;
};
// The customer (through the shop) asked to cancel.
struct cancel_requested {
  bool operator==(const cancel_requested&) const = default;
};
}  // namespace events

using saga_event =
    std::variant<events::step_succeeded, events::step_rejected, events::step_gave_up,
                 events::deadline_expired, events::processing_failed, events::cancel_requested>;

// One enumerator per saga_event alternative, in the same order, for logs and errors.
enum class event_kind {
  step_succeeded,
  step_rejected,
  step_gave_up,
  deadline_expired,
  processing_failed,
  cancel_requested,
};

inline constexpr std::array<event_kind, std::variant_size_v<saga_event>> all_event_kinds = {
    event_kind::step_succeeded,   event_kind::step_rejected,     event_kind::step_gave_up,
    event_kind::deadline_expired, event_kind::processing_failed, event_kind::cancel_requested,
};

event_kind kind_of(const saga_event& event);

// "step_rejected", ...
std::string_view to_string(event_kind kind);

enum class command_kind {
  compensate,              // run the step's compensation (idempotent: undoing nothing is a no-op)
  compensate_by_operator,  // the running definition cannot undo the step: dead-letter it
  finalize,                // run the step's finalizer
  publish_succeeded,       // write the step's own event to the outbox
  publish_failed,          // write order_failed to the outbox
};

struct saga_command {
  command_kind kind = command_kind::publish_failed;
  std::string step;  // empty exactly for publish_failed

  static saga_command compensate(std::string step) {
    return {command_kind::compensate, std::move(step)};
  }
  static saga_command compensate_by_operator(std::string step) {
    return {command_kind::compensate_by_operator, std::move(step)};
  }
  static saga_command finalize(std::string step) {
    return {command_kind::finalize, std::move(step)};
  }
  static saga_command publish_succeeded(std::string step) {
    return {command_kind::publish_succeeded, std::move(step)};
  }
  static saga_command publish_failed() { return {command_kind::publish_failed, {}}; }

  bool operator==(const saga_command&) const = default;
};

// "compensate(pay)", "publish_failed", ...
std::string to_string(const saga_command& command);

struct saga_transition {
  saga_state next;
  // To run in this order, in the transaction that stores `next`: compensations newest step
  // first (a late-landing step given up while awaited counts as the newest), then finalizers in
  // step order, then the event to publish (the succeeded step's own, or order_failed on every
  // move to CANCELLED or FAILED).
  std::vector<saga_command> commands;
};

enum class saga_error {
  event_does_not_fit,  // late, duplicated, out of order, or the saga has ended
  step_not_in_saga,    // the saga's own list lacks the step: pass the message on
  step_not_declared,   // the saga's step, but the running definition does not declare it
  malformed_event,     // a rejection without a well-formed reason
  inconsistent_state,  // the stored state breaks its invariants: a bug or a hand edit
};

struct saga_rejection {
  saga_error error = saga_error::event_does_not_fit;
  std::string status;  // the saga's status when it refused
  event_kind event = event_kind::step_succeeded;
  std::string step;  // the event's step; empty for events without one

  bool operator==(const saga_rejection&) const = default;
};

// "event step_rejected(pay) does not fit order status PLACED"
std::string describe(const saga_rejection& rejection);

using saga_result = std::variant<saga_transition, saga_rejection>;

// Accepts (awaited = the step awaited_step names; "given up" = gave up, deadline, dead letter
// or cancel while that step is awaited):
//   running + awaited succeeded -> the step's status (or unchanged), compensation owed if it has
//     one; publish its event. The last declared step of the saga's list completes it instead:
//     CONFIRMED; finalize owed steps that have a finalizer (no longer owed); publish its event.
//   running + awaited rejected(reason, detail) -> CANCELLED(reason); the step is not undone.
//   running + awaited gave up -> CANCELLED(its failure reason), or FAILED when it has none.
//   running + deadline_expired -> CANCELLED(the awaited step's timeout reason).
//   running + processing_failed -> FAILED(detail).
//   running + cancel_requested -> CANCELLED(CUSTOMER_CANCELLED).
//   CANCELLED + succeeded of a step that may land late -> unchanged; compensate it (money is
//     never kept for a cancelled order, whichever step the saga stopped at).
// Every move to CANCELLED or FAILED runs the owed compensations newest first, preceded by the
// awaited step's own when it may land late and was given up, then publishes order_failed.
// Everything else is refused.
saga_result apply(const saga_definition& definition, const saga_state& state,
                  const saga_event& event);

}  // namespace op::saga
