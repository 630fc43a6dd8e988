#include "reference/order_saga.hpp"

#include <type_traits>
#include <utility>

namespace op::orders {

namespace {

// kind_of relies on saga_event_kind listing the alternatives in the variant's order.
template <saga_event_kind kind, typename event>
constexpr bool kind_matches =
    std::is_same_v<std::variant_alternative_t<static_cast<std::size_t>(kind), saga_event>, event>;
static_assert(kind_matches<saga_event_kind::validation_passed, events::validation_passed>);
static_assert(kind_matches<saga_event_kind::validation_failed, events::validation_failed>);
static_assert(kind_matches<saga_event_kind::inventory_reserved, events::inventory_reserved>);
static_assert(kind_matches<saga_event_kind::out_of_stock, events::out_of_stock>);
static_assert(kind_matches<saga_event_kind::payment_captured, events::payment_captured>);
static_assert(kind_matches<saga_event_kind::payment_declined, events::payment_declined>);
static_assert(kind_matches<saga_event_kind::payment_failed, events::payment_failed>);
static_assert(kind_matches<saga_event_kind::order_confirmed, events::order_confirmed>);
static_assert(kind_matches<saga_event_kind::deadline_expired, events::deadline_expired>);
static_assert(kind_matches<saga_event_kind::processing_failed, events::processing_failed>);
static_assert(kind_matches<saga_event_kind::cancel_requested, events::cancel_requested>);

bool holds_inventory(order_status status) {
  return status == order_status::inventory_reserved || status == order_status::payment_processed;
}

bool holds_payment(order_status status) {
  return status == order_status::payment_processed || status == order_status::confirmed;
}

// Decides one event against one state; each operator() handles one event kind.
class transition_rules {
 public:
  transition_rules(const saga_state& state, saga_event_kind kind) : state_(state), kind_(kind) {}

  saga_result operator()(const events::validation_passed&) const {
    if (state_.status != order_status::placed)
      return refuse();
    return advance(order_status::validated, topic_kind::order_validated);
  }

  saga_result operator()(const events::validation_failed& event) const {
    if (state_.status != order_status::placed)
      return refuse();
    return cancel(cancel_reason::validation_failed, event.detail, false);
  }

  saga_result operator()(const events::inventory_reserved&) const {
    if (state_.status != order_status::validated)
      return refuse();
    return advance(order_status::inventory_reserved, topic_kind::inventory_reserved);
  }

  saga_result operator()(const events::out_of_stock& event) const {
    if (state_.status != order_status::validated)
      return refuse();
    return cancel(cancel_reason::out_of_stock, event.detail, false);
  }

  saga_result operator()(const events::payment_captured&) const {
    if (state_.status == order_status::inventory_reserved)
      return advance(order_status::payment_processed, topic_kind::payment_processed);
    if (state_.status == order_status::cancelled) {
      // The deadline won the race against a charge in flight; give the money back and leave
      // the cancellation as it is.
      return saga_transition{state_, {saga_command::refund_payment()}};
    }
    return refuse();
  }

  saga_result operator()(const events::payment_declined& event) const {
    if (state_.status != order_status::inventory_reserved)
      return refuse();
    return cancel(cancel_reason::payment_declined, event.detail, false);
  }

  saga_result operator()(const events::payment_failed& event) const {
    if (state_.status != order_status::inventory_reserved)
      return refuse();
    // A call that timed out may still have captured at the gateway; the refund covers it.
    return cancel(cancel_reason::payment_failed, event.detail, true);
  }

  saga_result operator()(const events::order_confirmed&) const {
    if (state_.status != order_status::payment_processed)
      return refuse();
    saga_transition out{state_, {}};
    out.next.status = order_status::confirmed;
    out.next.inventory_held = false;  // sold now, no longer merely reserved
    out.commands.push_back(saga_command::commit_inventory());
    out.commands.push_back(saga_command::publish(topic_kind::order_confirmed));
    return out;
  }

  saga_result operator()(const events::deadline_expired&) const {
    switch (state_.status) {
      case order_status::placed:
        return cancel(cancel_reason::validation_timeout, {}, false);
      case order_status::validated:
        return cancel(cancel_reason::reservation_timeout, {}, false);
      case order_status::inventory_reserved:
        // The payment call may still capture after we give up; the refund covers it.
        return cancel(cancel_reason::payment_timeout, {}, true);
      case order_status::payment_processed:
        return cancel(cancel_reason::confirmation_timeout, {}, false);
      case order_status::confirmed:
      case order_status::cancelled:
      case order_status::failed:
        break;
    }
    return refuse();
  }

  saga_result operator()(const events::processing_failed& event) const {
    if (is_terminal(state_.status))
      return refuse();
    // Dead-lettered while waiting for the payment: a charge may have been captured.
    return end(order_status::failed, std::nullopt, event.detail,
               state_.status == order_status::inventory_reserved);
  }

  saga_result operator()(const events::cancel_requested&) const {
    if (is_terminal(state_.status))
      return refuse();
    // Waiting for the payment, the pay step's charge may be in flight: it is refunded too,
    // now if it landed already, or when its capture reaches the cancelled saga.
    return cancel(cancel_reason::customer_cancelled, "cancelled at the customer's request",
                  state_.status == order_status::inventory_reserved);
  }

 private:
  saga_rejection refuse() const { return {saga_error::event_does_not_fit, state_.status, kind_}; }

  saga_transition advance(order_status next, topic_kind topic) const {
    saga_transition out{state_, {saga_command::publish(topic)}};
    out.next.status = next;
    out.next.inventory_held = holds_inventory(next);
    out.next.payment_captured = holds_payment(next);
    return out;
  }

  saga_transition cancel(cancel_reason reason, std::string detail,
                         bool charge_may_be_in_flight) const {
    return end(order_status::cancelled, reason, std::move(detail), charge_may_be_in_flight);
  }

  // Ends the saga, undoing what it holds in reverse order of the steps: the payment came after
  // the reservation, so it is refunded before the stock is released.
  saga_transition end(order_status status, std::optional<cancel_reason> reason, std::string detail,
                      bool charge_may_be_in_flight) const {
    saga_transition out{{status, reason, std::move(detail), false, false}, {}};
    if (state_.payment_captured || charge_may_be_in_flight)
      out.commands.push_back(saga_command::refund_payment());
    if (state_.inventory_held)
      out.commands.push_back(saga_command::release_inventory());
    out.commands.push_back(saga_command::publish(topic_kind::order_failed));
    return out;
  }

  const saga_state& state_;
  saga_event_kind kind_;
};

}  // namespace

bool is_consistent(const saga_state& state) {
  return state.inventory_held == holds_inventory(state.status) &&
         state.payment_captured == holds_payment(state.status) &&
         state.reason.has_value() == (state.status == order_status::cancelled);
}

saga_event_kind kind_of(const saga_event& event) {
  return static_cast<saga_event_kind>(event.index());
}

std::string_view to_string(saga_event_kind kind) {
  switch (kind) {
    case saga_event_kind::validation_passed:
      return "validation_passed";
    case saga_event_kind::validation_failed:
      return "validation_failed";
    case saga_event_kind::inventory_reserved:
      return "inventory_reserved";
    case saga_event_kind::out_of_stock:
      return "out_of_stock";
    case saga_event_kind::payment_captured:
      return "payment_captured";
    case saga_event_kind::payment_declined:
      return "payment_declined";
    case saga_event_kind::payment_failed:
      return "payment_failed";
    case saga_event_kind::order_confirmed:
      return "order_confirmed";
    case saga_event_kind::deadline_expired:
      return "deadline_expired";
    case saga_event_kind::processing_failed:
      return "processing_failed";
    case saga_event_kind::cancel_requested:
      return "cancel_requested";
  }
  return "unknown";
}

std::string_view to_string(topic_kind topic) {
  switch (topic) {
    case topic_kind::order_validated:
      return "order_validated";
    case topic_kind::inventory_reserved:
      return "inventory_reserved";
    case topic_kind::payment_processed:
      return "payment_processed";
    case topic_kind::order_confirmed:
      return "order_confirmed";
    case topic_kind::order_failed:
      return "order_failed";
  }
  return "unknown";
}

std::string to_string(const saga_command& command) {
  switch (command.kind) {
    case command_kind::publish: {
      std::string out = "publish(";
      out += command.topic ? to_string(*command.topic) : "?";
      out += ')';
      return out;
    }
    case command_kind::release_inventory:
      return "release_inventory";
    case command_kind::commit_inventory:
      return "commit_inventory";
    case command_kind::refund_payment:
      return "refund_payment";
  }
  return "unknown";
}

std::string describe(const saga_rejection& rejection) {
  std::string out;
  switch (rejection.error) {
    case saga_error::event_does_not_fit:
      out = "event ";
      out += to_string(rejection.event);
      out += " does not fit order status ";
      out += to_string(rejection.status);
      if (is_terminal(rejection.status))
        out += " (the saga has ended)";
      return out;
    case saga_error::inconsistent_state:
      out = "saga state contradicts order status ";
      out += to_string(rejection.status);
      out += " (inventory_held, payment_captured or reason); refusing event ";
      out += to_string(rejection.event);
      return out;
  }
  return "saga rejected the event";
}

std::string_view to_string(saga_step step) {
  switch (step) {
    case saga_step::validation:
      return "validation";
    case saga_step::reservation:
      return "reservation";
    case saga_step::payment:
      return "payment";
    case saga_step::confirmation:
      return "confirmation";
  }
  return "unknown";
}

std::optional<saga_step> awaited_step(order_status status) {
  switch (status) {
    case order_status::placed:
      return saga_step::validation;
    case order_status::validated:
      return saga_step::reservation;
    case order_status::inventory_reserved:
      return saga_step::payment;
    case order_status::payment_processed:
      return saga_step::confirmation;
    case order_status::confirmed:
    case order_status::cancelled:
    case order_status::failed:
      break;
  }
  return std::nullopt;
}

saga_result order_saga::apply(const saga_state& state, const saga_event& event) {
  saga_event_kind kind = kind_of(event);
  if (!is_consistent(state))
    return saga_rejection{saga_error::inconsistent_state, state.status, kind};
  return std::visit(transition_rules(state, kind), event);
}

}  // namespace op::orders
