#pragma once
// The built-in order saga's transitions, written out by hand for its four steps: the reference
// the generic saga machine (src/saga/domain/) running the built-in definition is checked
// against, for every state and event (order_saga_definition_test). The server does not use
// it: it runs the generic machine.

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "orders/domain/order_status.hpp"

namespace op::orders {

// One saga row. A default-constructed state is a freshly placed order.
struct saga_state {
  order_status status = order_status::placed;
  std::optional<cancel_reason> reason;  // set exactly when status is CANCELLED
  std::string detail;                   // why it ended, as free text: decline message, DLQ error
  // What compensation has to undo. inventory_held: a reservation exists that was neither
  // released nor committed as sold. payment_captured: money was taken and not refunded.
  bool inventory_held = false;
  bool payment_captured = false;

  bool operator==(const saga_state&) const = default;
};

// The flags and reason agree with the status: held in INVENTORY_RESERVED and PAYMENT_PROCESSED,
// captured in PAYMENT_PROCESSED and CONFIRMED, a reason only when CANCELLED. Every state that
// apply returns is consistent; apply refuses to work from one that is not.
bool is_consistent(const saga_state& state);

// The outcomes a stage reports. Details are free text for operators and the order's API view.
namespace events {
struct validation_passed {
  bool operator==(const validation_passed&) const = default;
};
struct validation_failed {
  std::string detail;
  bool operator==(const validation_failed&) const = default;
};
struct inventory_reserved {
  bool operator==(const inventory_reserved&) const = default;
};
struct out_of_stock {
  std::string detail;
  bool operator==(const out_of_stock&) const = default;
};
struct payment_captured {
  std::string charge_id;
  bool operator==(const payment_captured&) const = default;
};
struct payment_declined {
  std::string detail;
  bool operator==(const payment_declined&) const = default;
};
// Transient gateway errors until the retries ran out.
struct payment_failed {
  std::string detail;
  bool operator==(const payment_failed&) const = default;
};
struct order_confirmed {
  bool operator==(const order_confirmed&) const = default;
};
// The saga sat in its current step past that step's deadline.
struct deadline_expired {
  bool operator==(const deadline_expired&) const = default;
};
// The stage's message was dead-lettered; the order ends FAILED.
struct processing_failed {
  std::string detail;
  bool operator==(const processing_failed&) const = default;
};
// The customer (through the shop) asked to cancel: POST /api/orders/{id}/cancel.
struct cancel_requested {
  bool operator==(const cancel_requested&) const = default;
};
}  // namespace events

using saga_event =
    std::variant<events::validation_passed, events::validation_failed, events::inventory_reserved,
                 events::out_of_stock, events::payment_captured, events::payment_declined,
                 events::payment_failed, events::order_confirmed, events::deadline_expired,
                 events::processing_failed, events::cancel_requested>;

// One enumerator per saga_event alternative, in the same order, for logs and errors.
enum class saga_event_kind {
  validation_passed,
  validation_failed,
  inventory_reserved,
  out_of_stock,
  payment_captured,
  payment_declined,
  payment_failed,
  order_confirmed,
  deadline_expired,
  processing_failed,
  cancel_requested,
};

inline constexpr std::array<saga_event_kind, std::variant_size_v<saga_event>> all_saga_event_kinds =
    {
        saga_event_kind::validation_passed,  saga_event_kind::validation_failed,
        saga_event_kind::inventory_reserved, saga_event_kind::out_of_stock,
        saga_event_kind::payment_captured,   saga_event_kind::payment_declined,
        saga_event_kind::payment_failed,     saga_event_kind::order_confirmed,
        saga_event_kind::deadline_expired,   saga_event_kind::processing_failed,
        saga_event_kind::cancel_requested,
};

saga_event_kind kind_of(const saga_event& event);

// "payment_declined", ...
std::string_view to_string(saga_event_kind kind);

// The event a command publishes; the adapter maps each to its configured topic name.
enum class topic_kind {
  order_validated,
  inventory_reserved,
  payment_processed,
  order_confirmed,
  order_failed,
};

// "order_failed", ...
std::string_view to_string(topic_kind topic);

enum class command_kind {
  publish,            // write the topic's event to the outbox
  release_inventory,  // give the reserved stock back
  commit_inventory,   // turn the reservation into a sale
  refund_payment,     // by order id, idempotent: refunding nothing is a no-op at the gateway
};

struct saga_command {
  command_kind kind = command_kind::publish;
  std::optional<topic_kind> topic;  // set exactly for publish

  static saga_command publish(topic_kind topic) { return {command_kind::publish, topic}; }
  static saga_command release_inventory() { return {command_kind::release_inventory, {}}; }
  static saga_command commit_inventory() { return {command_kind::commit_inventory, {}}; }
  static saga_command refund_payment() { return {command_kind::refund_payment, {}}; }

  bool operator==(const saga_command&) const = default;
};

// "publish(order_failed)", "release_inventory", ...
std::string to_string(const saga_command& command);

struct saga_transition {
  saga_state next;
  // To run in order, in the transaction that stores `next`: compensations first, newest step
  // first (refund before release), then the event to publish.
  std::vector<saga_command> commands;
};

enum class saga_error {
  event_does_not_fit,  // not expected in this status: late, duplicated or out of order
  inconsistent_state,  // the stored flags or reason contradict the status: a bug or a hand edit
};

struct saga_rejection {
  saga_error error = saga_error::event_does_not_fit;
  order_status status = order_status::placed;
  saga_event_kind event = saga_event_kind::validation_passed;

  bool operator==(const saga_rejection&) const = default;
};

// "event payment_declined does not fit order status PLACED"
std::string describe(const saga_rejection& rejection);

using saga_result = std::variant<saga_transition, saga_rejection>;

// The steps a saga waits on, each with its own deadline.
enum class saga_step {
  validation,
  reservation,
  payment,
  confirmation,
};

// "validation", ...
std::string_view to_string(saga_step step);

// The step whose outcome an order in `status` waits for; nullopt once the saga has ended.
std::optional<saga_step> awaited_step(order_status status);

class order_saga {
 public:
  // Accepts exactly these (status + event -> next status; commands):
  //   PLACED + validation_passed -> VALIDATED; publish(order_validated)
  //   PLACED + validation_failed -> CANCELLED(VALIDATION_FAILED)
  //   VALIDATED + inventory_reserved -> INVENTORY_RESERVED; publish(inventory_reserved)
  //   VALIDATED + out_of_stock -> CANCELLED(OUT_OF_STOCK)
  //   INVENTORY_RESERVED + payment_captured -> PAYMENT_PROCESSED; publish(payment_processed)
  //   INVENTORY_RESERVED + payment_declined -> CANCELLED; release
  //   INVENTORY_RESERVED + payment_failed -> CANCELLED; refund (a timed-out call may have
  //     captured), release
  //   PAYMENT_PROCESSED + order_confirmed -> CONFIRMED; commit, publish(order_confirmed)
  //   non-terminal + deadline_expired -> CANCELLED(<step>_TIMEOUT); release and refund, when
  //     waiting on or past payment (a charge may still be in flight)
  //   non-terminal + processing_failed -> FAILED; refund and release what is held
  //   PLACED, VALIDATED + cancel_requested -> CANCELLED(CUSTOMER_CANCELLED); nothing is held
  //     yet (the reservation, when its step runs later, finds the saga cancelled)
  //   INVENTORY_RESERVED + cancel_requested -> CANCELLED(CUSTOMER_CANCELLED); refund (the
  //     pay step's charge may be in flight), release
  //   PAYMENT_PROCESSED + cancel_requested -> CANCELLED(CUSTOMER_CANCELLED); refund, release
  //   CANCELLED + payment_captured -> CANCELLED unchanged; refund (a capture that lost the
  //     race against the deadline or a cancel: money is never kept for a cancelled order)
  // A cancel is decided at once under the saga row's lock, which also serialises it with the
  // stage transactions: a step that completes after it finds the saga CANCELLED and is
  // refused (a capture is refunded); a step that completed before it is compensated by it.
  // CONFIRMED, FAILED and CANCELLED refuse cancel_requested (the caller answers 409, or the
  // same answer again when the order was already CUSTOMER_CANCELLED).
  // Every move to CANCELLED or FAILED also publishes order_failed. Everything else is refused.
  static saga_result apply(const saga_state& state, const saga_event& event);
};

}  // namespace op::orders
