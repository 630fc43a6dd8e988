#include "reference/order_saga.hpp"

#include <catch2/catch.hpp>
#include <cstddef>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "orders/domain/order_status.hpp"

using op::orders::all_cancel_reasons;
using op::orders::all_order_statuses;
using op::orders::all_saga_event_kinds;
using op::orders::awaited_step;
using op::orders::cancel_reason;
using op::orders::command_kind;
using op::orders::is_consistent;
using op::orders::is_terminal;
using op::orders::kind_of;
using op::orders::order_saga;
using op::orders::order_status;
using op::orders::parse_cancel_reason;
using op::orders::parse_order_status;
using op::orders::saga_command;
using op::orders::saga_error;
using op::orders::saga_event;
using op::orders::saga_event_kind;
using op::orders::saga_rejection;
using op::orders::saga_result;
using op::orders::saga_state;
using op::orders::saga_step;
using op::orders::saga_transition;
using op::orders::topic_kind;
namespace events = op::orders::events;

// Readable failure messages instead of enum integers and "{?}".
namespace Catch {
template <>
struct StringMaker<order_status> {
  static std::string convert(order_status value) { return std::string(to_string(value)); }
};
template <>
struct StringMaker<cancel_reason> {
  static std::string convert(cancel_reason value) { return std::string(to_string(value)); }
};
template <>
struct StringMaker<saga_event_kind> {
  static std::string convert(saga_event_kind value) { return std::string(to_string(value)); }
};
template <>
struct StringMaker<saga_command> {
  static std::string convert(const saga_command& value) { return to_string(value); }
};
template <>
struct StringMaker<saga_state> {
  static std::string convert(const saga_state& value) {
    std::string out = "{";
    out += to_string(value.status);
    out += ", reason=";
    out += value.reason ? std::string(to_string(*value.reason)) : "none";
    out += ", detail=\"" + value.detail + "\"";
    out += value.inventory_held ? ", held" : ", not held";
    out += value.payment_captured ? ", captured}" : ", not captured}";
    return out;
  }
};
}  // namespace Catch

namespace {

const saga_command publish_order_validated = saga_command::publish(topic_kind::order_validated);
const saga_command publish_inventory_reserved =
    saga_command::publish(topic_kind::inventory_reserved);
const saga_command publish_payment_processed = saga_command::publish(topic_kind::payment_processed);
const saga_command publish_order_confirmed = saga_command::publish(topic_kind::order_confirmed);
const saga_command publish_order_failed = saga_command::publish(topic_kind::order_failed);
const saga_command release = saga_command::release_inventory();
const saga_command commit = saga_command::commit_inventory();
const saga_command refund = saga_command::refund_payment();
const std::string customer_detail = "cancelled at the customer's request";

// A consistent persisted state for each status; the cancelled one lost the race to a deadline.
saga_state state_in(order_status status) {
  saga_state state;
  state.status = status;
  switch (status) {
    case order_status::placed:
    case order_status::validated:
      break;
    case order_status::inventory_reserved:
      state.inventory_held = true;
      break;
    case order_status::payment_processed:
      state.inventory_held = true;
      state.payment_captured = true;
      break;
    case order_status::confirmed:
      state.payment_captured = true;
      break;
    case order_status::cancelled:
      state.reason = cancel_reason::payment_timeout;
      state.detail = "cancelled earlier";
      break;
    case order_status::failed:
      state.detail = "failed earlier";
      break;
  }
  return state;
}

// One event of each kind; every free-text field names its kind so the tests can see it travel.
saga_event sample(saga_event_kind kind) {
  switch (kind) {
    case saga_event_kind::validation_passed:
      return events::validation_passed{};
    case saga_event_kind::validation_failed:
      return events::validation_failed{"detail of validation_failed"};
    case saga_event_kind::inventory_reserved:
      return events::inventory_reserved{};
    case saga_event_kind::out_of_stock:
      return events::out_of_stock{"detail of out_of_stock"};
    case saga_event_kind::payment_captured:
      return events::payment_captured{"ch_123"};
    case saga_event_kind::payment_declined:
      return events::payment_declined{"detail of payment_declined"};
    case saga_event_kind::payment_failed:
      return events::payment_failed{"detail of payment_failed"};
    case saga_event_kind::order_confirmed:
      return events::order_confirmed{};
    case saga_event_kind::deadline_expired:
      return events::deadline_expired{};
    case saga_event_kind::processing_failed:
      return events::processing_failed{"detail of processing_failed"};
    case saga_event_kind::cancel_requested:
      return events::cancel_requested{};
  }
  FAIL("unknown event kind");
  return events::validation_passed{};
}

saga_state make_state(order_status status, std::optional<cancel_reason> reason, std::string detail,
                      bool held, bool captured) {
  return saga_state{status, reason, std::move(detail), held, captured};
}

// The transition table of the design, written out independently of the implementation.
struct expected_row {
  order_status from;
  saga_event_kind event;
  saga_state next;
  std::vector<saga_command> commands;
};

const std::vector<expected_row>& transition_table() {
  using e = saga_event_kind;
  using s = order_status;
  using r = cancel_reason;
  static const std::vector<expected_row> table = {
      {s::placed,
       e::validation_passed,
       make_state(s::validated, {}, "", false, false),
       {publish_order_validated}},
      {s::placed,
       e::validation_failed,
       make_state(s::cancelled, r::validation_failed, "detail of validation_failed", false, false),
       {publish_order_failed}},
      {s::validated,
       e::inventory_reserved,
       make_state(s::inventory_reserved, {}, "", true, false),
       {publish_inventory_reserved}},
      {s::validated,
       e::out_of_stock,
       make_state(s::cancelled, r::out_of_stock, "detail of out_of_stock", false, false),
       {publish_order_failed}},
      {s::inventory_reserved,
       e::payment_captured,
       make_state(s::payment_processed, {}, "", true, true),
       {publish_payment_processed}},
      {s::inventory_reserved,
       e::payment_declined,
       make_state(s::cancelled, r::payment_declined, "detail of payment_declined", false, false),
       {release, publish_order_failed}},
      {s::inventory_reserved,
       e::payment_failed,
       make_state(s::cancelled, r::payment_failed, "detail of payment_failed", false, false),
       {refund, release, publish_order_failed}},
      {s::payment_processed,
       e::order_confirmed,
       make_state(s::confirmed, {}, "", false, true),
       {commit, publish_order_confirmed}},
      {s::placed,
       e::deadline_expired,
       make_state(s::cancelled, r::validation_timeout, "", false, false),
       {publish_order_failed}},
      {s::validated,
       e::deadline_expired,
       make_state(s::cancelled, r::reservation_timeout, "", false, false),
       {publish_order_failed}},
      {s::inventory_reserved,
       e::deadline_expired,
       make_state(s::cancelled, r::payment_timeout, "", false, false),
       {refund, release, publish_order_failed}},
      {s::payment_processed,
       e::deadline_expired,
       make_state(s::cancelled, r::confirmation_timeout, "", false, false),
       {refund, release, publish_order_failed}},
      {s::placed,
       e::processing_failed,
       make_state(s::failed, {}, "detail of processing_failed", false, false),
       {publish_order_failed}},
      {s::validated,
       e::processing_failed,
       make_state(s::failed, {}, "detail of processing_failed", false, false),
       {publish_order_failed}},
      {s::inventory_reserved,
       e::processing_failed,
       make_state(s::failed, {}, "detail of processing_failed", false, false),
       {refund, release, publish_order_failed}},
      {s::payment_processed,
       e::processing_failed,
       make_state(s::failed, {}, "detail of processing_failed", false, false),
       {refund, release, publish_order_failed}},
      {s::cancelled,
       e::payment_captured,
       make_state(s::cancelled, r::payment_timeout, "cancelled earlier", false, false),
       {refund}},
      {s::placed,
       e::cancel_requested,
       make_state(s::cancelled, r::customer_cancelled, customer_detail, false, false),
       {publish_order_failed}},
      {s::validated,
       e::cancel_requested,
       make_state(s::cancelled, r::customer_cancelled, customer_detail, false, false),
       {publish_order_failed}},
      {s::inventory_reserved,
       e::cancel_requested,
       make_state(s::cancelled, r::customer_cancelled, customer_detail, false, false),
       {refund, release, publish_order_failed}},
      {s::payment_processed,
       e::cancel_requested,
       make_state(s::cancelled, r::customer_cancelled, customer_detail, false, false),
       {refund, release, publish_order_failed}},
  };
  return table;
}

const expected_row* find_row(order_status from, saga_event_kind event) {
  for (const auto& row : transition_table()) {
    if (row.from == from && row.event == event)
      return &row;
  }
  return nullptr;
}

saga_transition accepted(const saga_result& result) {
  const auto* transition = std::get_if<saga_transition>(&result);
  if (transition == nullptr)
    FAIL("rejected: " << describe(std::get<saga_rejection>(result)));
  return *transition;
}

saga_rejection rejected(const saga_result& result) {
  const auto* rejection = std::get_if<saga_rejection>(&result);
  if (rejection == nullptr)
    FAIL("accepted, moving to " << to_string(std::get<saga_transition>(result).next.status));
  return *rejection;
}

saga_transition apply(const saga_state& state, const saga_event& event) {
  return accepted(order_saga::apply(state, event));
}

}  // namespace

TEST_CASE("order status strings are the public API's names", "[saga]") {
  CHECK(to_string(order_status::placed) == "PLACED");
  CHECK(to_string(order_status::validated) == "VALIDATED");
  CHECK(to_string(order_status::inventory_reserved) == "INVENTORY_RESERVED");
  CHECK(to_string(order_status::payment_processed) == "PAYMENT_PROCESSED");
  CHECK(to_string(order_status::confirmed) == "CONFIRMED");
  CHECK(to_string(order_status::cancelled) == "CANCELLED");
  CHECK(to_string(order_status::failed) == "FAILED");
  for (order_status status : all_order_statuses)
    CHECK(parse_order_status(to_string(status)) == status);
  CHECK_FALSE(parse_order_status("placed").has_value());
  CHECK_FALSE(parse_order_status("PLACED ").has_value());
  CHECK_FALSE(parse_order_status("").has_value());
  CHECK_FALSE(parse_order_status("SHIPPED").has_value());
}

TEST_CASE("cancel reason strings are the public API's names", "[saga]") {
  CHECK(to_string(cancel_reason::validation_failed) == "VALIDATION_FAILED");
  CHECK(to_string(cancel_reason::out_of_stock) == "OUT_OF_STOCK");
  CHECK(to_string(cancel_reason::payment_declined) == "PAYMENT_DECLINED");
  CHECK(to_string(cancel_reason::payment_failed) == "PAYMENT_FAILED");
  CHECK(to_string(cancel_reason::payment_timeout) == "PAYMENT_TIMEOUT");
  CHECK(to_string(cancel_reason::confirmation_timeout) == "CONFIRMATION_TIMEOUT");
  CHECK(to_string(cancel_reason::validation_timeout) == "VALIDATION_TIMEOUT");
  CHECK(to_string(cancel_reason::reservation_timeout) == "RESERVATION_TIMEOUT");
  CHECK(to_string(cancel_reason::customer_cancelled) == "CUSTOMER_CANCELLED");
  for (cancel_reason reason : all_cancel_reasons)
    CHECK(parse_cancel_reason(to_string(reason)) == reason);
  CHECK_FALSE(parse_cancel_reason("out_of_stock").has_value());
  CHECK_FALSE(parse_cancel_reason("INSUFFICIENT_FUNDS").has_value());
  CHECK_FALSE(parse_cancel_reason("").has_value());
}

TEST_CASE("terminal statuses wait on no step and the others wait on exactly one", "[saga]") {
  CHECK(awaited_step(order_status::placed) == saga_step::validation);
  CHECK(awaited_step(order_status::validated) == saga_step::reservation);
  CHECK(awaited_step(order_status::inventory_reserved) == saga_step::payment);
  CHECK(awaited_step(order_status::payment_processed) == saga_step::confirmation);
  for (order_status status :
       {order_status::confirmed, order_status::cancelled, order_status::failed}) {
    CHECK(is_terminal(status));
    CHECK_FALSE(awaited_step(status).has_value());
  }
  for (order_status status : {order_status::placed, order_status::validated,
                              order_status::inventory_reserved, order_status::payment_processed})
    CHECK_FALSE(is_terminal(status));
  CHECK(to_string(saga_step::payment) == "payment");
}

TEST_CASE("event kinds and commands have stable names", "[saga]") {
  for (saga_event_kind kind : all_saga_event_kinds)
    CHECK(kind_of(sample(kind)) == kind);
  CHECK(to_string(saga_event_kind::payment_declined) == "payment_declined");
  CHECK(to_string(saga_event_kind::deadline_expired) == "deadline_expired");
  CHECK(to_string(publish_order_failed) == "publish(order_failed)");
  CHECK(to_string(publish_inventory_reserved) == "publish(inventory_reserved)");
  CHECK(to_string(release) == "release_inventory");
  CHECK(to_string(commit) == "commit_inventory");
  CHECK(to_string(refund) == "refund_payment");
  CHECK(release.kind == command_kind::release_inventory);
  CHECK_FALSE(release.topic.has_value());
  CHECK(publish_order_failed.topic == topic_kind::order_failed);
}

TEST_CASE("a new saga state is a placed order holding nothing", "[saga]") {
  saga_state fresh;
  CHECK(fresh.status == order_status::placed);
  CHECK_FALSE(fresh.reason.has_value());
  CHECK(fresh.detail.empty());
  CHECK_FALSE(fresh.inventory_held);
  CHECK_FALSE(fresh.payment_captured);
  CHECK(is_consistent(fresh));
}

TEST_CASE("the happy path walks from PLACED to CONFIRMED", "[saga]") {
  saga_state state;

  auto step = apply(state, events::validation_passed{});
  CHECK(step.next == make_state(order_status::validated, {}, "", false, false));
  CHECK(step.commands == std::vector{publish_order_validated});

  step = apply(step.next, events::inventory_reserved{});
  CHECK(step.next == make_state(order_status::inventory_reserved, {}, "", true, false));
  CHECK(step.commands == std::vector{publish_inventory_reserved});

  step = apply(step.next, events::payment_captured{"ch_42"});
  CHECK(step.next == make_state(order_status::payment_processed, {}, "", true, true));
  CHECK(step.commands == std::vector{publish_payment_processed});

  step = apply(step.next, events::order_confirmed{});
  CHECK(step.next == make_state(order_status::confirmed, {}, "", false, true));
  CHECK(step.commands == std::vector{commit, publish_order_confirmed});
}

TEST_CASE("business failures cancel with a reason and undo the reservation", "[saga]") {
  SECTION("validation failed") {
    auto step = apply(state_in(order_status::placed), events::validation_failed{"no items"});
    CHECK(step.next == make_state(order_status::cancelled, cancel_reason::validation_failed,
                                  "no items", false, false));
    CHECK(step.commands == std::vector{publish_order_failed});
  }
  SECTION("out of stock") {
    auto step = apply(state_in(order_status::validated), events::out_of_stock{"SKU-1: 0 left"});
    CHECK(step.next == make_state(order_status::cancelled, cancel_reason::out_of_stock,
                                  "SKU-1: 0 left", false, false));
    CHECK(step.commands == std::vector{publish_order_failed});
  }
  SECTION("card declined, insufficient funds included") {
    auto step = apply(state_in(order_status::inventory_reserved),
                      events::payment_declined{"insufficient_funds"});
    CHECK(step.next == make_state(order_status::cancelled, cancel_reason::payment_declined,
                                  "insufficient_funds", false, false));
    CHECK(step.commands == std::vector{release, publish_order_failed});
  }
  SECTION("gateway kept failing") {
    auto step = apply(state_in(order_status::inventory_reserved),
                      events::payment_failed{"503 after 3 attempts"});
    CHECK(step.next == make_state(order_status::cancelled, cancel_reason::payment_failed,
                                  "503 after 3 attempts", false, false));
    // The last attempt may have captured at the gateway before timing out: refund by order id.
    CHECK(step.commands == std::vector{refund, release, publish_order_failed});
  }
}

TEST_CASE("a deadline cancels with the step's timeout and undoes what may be held", "[saga]") {
  auto placed = apply(state_in(order_status::placed), events::deadline_expired{});
  CHECK(placed.next.status == order_status::cancelled);
  CHECK(placed.next.reason == cancel_reason::validation_timeout);
  CHECK(placed.commands == std::vector{publish_order_failed});

  auto validated = apply(state_in(order_status::validated), events::deadline_expired{});
  CHECK(validated.next.reason == cancel_reason::reservation_timeout);
  CHECK(validated.commands == std::vector{publish_order_failed});

  // A charge may still be in flight, so the refund goes out although none was recorded.
  auto reserved = apply(state_in(order_status::inventory_reserved), events::deadline_expired{});
  CHECK(reserved.next.reason == cancel_reason::payment_timeout);
  CHECK(reserved.commands == std::vector{refund, release, publish_order_failed});

  auto paid = apply(state_in(order_status::payment_processed), events::deadline_expired{});
  CHECK(paid.next.reason == cancel_reason::confirmation_timeout);
  CHECK(paid.commands == std::vector{refund, release, publish_order_failed});

  for (const auto& step : {placed, validated, reserved, paid}) {
    CHECK(step.next.status == order_status::cancelled);
    CHECK_FALSE(step.next.inventory_held);
    CHECK_FALSE(step.next.payment_captured);
  }
}

TEST_CASE("a dead-lettered message fails the order and undoes exactly what is held", "[saga]") {
  auto from = [](order_status status) {
    return apply(state_in(status), events::processing_failed{"cannot decode"});
  };
  CHECK(from(order_status::placed).commands == std::vector{publish_order_failed});
  CHECK(from(order_status::validated).commands == std::vector{publish_order_failed});
  CHECK(from(order_status::inventory_reserved).commands ==
        std::vector{refund, release, publish_order_failed});
  CHECK(from(order_status::payment_processed).commands ==
        std::vector{refund, release, publish_order_failed});
  for (order_status status : {order_status::placed, order_status::validated,
                              order_status::inventory_reserved, order_status::payment_processed}) {
    CHECK(from(status).next == make_state(order_status::failed, {}, "cannot decode", false, false));
  }
}

TEST_CASE("a capture that loses the race to the deadline is refunded", "[saga]") {
  auto cancelled = apply(state_in(order_status::inventory_reserved), events::deadline_expired{});
  REQUIRE(cancelled.next.reason == cancel_reason::payment_timeout);

  auto late = apply(cancelled.next, events::payment_captured{"ch_late"});
  CHECK(late.next == cancelled.next);
  CHECK(late.commands == std::vector{refund});

  // A redelivery of the same capture is refunded again: refunds are idempotent by order id.
  auto again = apply(late.next, events::payment_captured{"ch_late"});
  CHECK(again.next == cancelled.next);
  CHECK(again.commands == std::vector{refund});

  // Whatever the cancellation's reason, the money goes back and the reason stays.
  for (cancel_reason reason : all_cancel_reasons) {
    auto state = make_state(order_status::cancelled, reason, "why", false, false);
    auto step = apply(state, events::payment_captured{"ch_x"});
    CHECK(step.next == state);
    CHECK(step.commands == std::vector{refund});
  }
}

TEST_CASE("a customer's cancel ends the order and undoes exactly what it may hold", "[saga]") {
  for (order_status status : all_order_statuses) {
    INFO(to_string(status));
    auto result = order_saga::apply(state_in(status), events::cancel_requested{});
    if (is_terminal(status)) {
      // CONFIRMED is kept (the caller answers 409); an ended saga is never ended twice.
      CHECK(rejected(result) == saga_rejection{saga_error::event_does_not_fit, status,
                                               saga_event_kind::cancel_requested});
      continue;
    }
    auto step = accepted(result);
    CHECK(step.next == make_state(order_status::cancelled, cancel_reason::customer_cancelled,
                                  customer_detail, false, false));
    const bool waits_for_payment_or_later =
        status == order_status::inventory_reserved || status == order_status::payment_processed;
    CHECK(step.commands == (waits_for_payment_or_later
                                ? std::vector{refund, release, publish_order_failed}
                                : std::vector{publish_order_failed}));
  }
}

TEST_CASE("a step that completes after the cancel changes nothing but refunds a capture",
          "[saga]") {
  // The cancel committed first (it held the saga row's lock); the step's transaction then
  // brings its outcome to the cancelled saga.
  for (order_status status : {order_status::placed, order_status::validated,
                              order_status::inventory_reserved, order_status::payment_processed}) {
    auto cancelled = apply(state_in(status), events::cancel_requested{});
    for (saga_event_kind kind : all_saga_event_kinds) {
      INFO(to_string(status) << ", cancelled, then " << to_string(kind));
      auto late = order_saga::apply(cancelled.next, sample(kind));
      if (kind == saga_event_kind::payment_captured) {
        // The pay step charged while the cancel ran: the money goes back, the order stays
        // CANCELLED/CUSTOMER_CANCELLED.
        auto step = accepted(late);
        CHECK(step.next == cancelled.next);
        CHECK(step.commands == std::vector{refund});
      } else {
        CHECK(rejected(late).status == order_status::cancelled);
      }
    }
  }
}

TEST_CASE("a cancel after a step completed compensates what that step did", "[saga]") {
  // The step's transaction committed first; the cancel sees its effect under the lock.
  auto validated = apply(state_in(order_status::placed), events::validation_passed{});
  CHECK(apply(validated.next, events::cancel_requested{}).commands ==
        std::vector{publish_order_failed});

  auto reserved = apply(state_in(order_status::validated), events::inventory_reserved{});
  CHECK(apply(reserved.next, events::cancel_requested{}).commands ==
        std::vector{refund, release, publish_order_failed});

  auto paid = apply(state_in(order_status::inventory_reserved), events::payment_captured{"ch"});
  auto after_paid = apply(paid.next, events::cancel_requested{});
  CHECK(after_paid.commands == std::vector{refund, release, publish_order_failed});
  CHECK(after_paid.next.reason == cancel_reason::customer_cancelled);

  // Confirmed first: the cancel is refused and the sale stands.
  auto confirmed = apply(state_in(order_status::payment_processed), events::order_confirmed{});
  CHECK(rejected(order_saga::apply(confirmed.next, events::cancel_requested{})).status ==
        order_status::confirmed);

  // Declined or out of stock first: the order is already CANCELLED with that reason, which
  // the cancel leaves as it is.
  auto declined =
      apply(state_in(order_status::inventory_reserved), events::payment_declined{"declined"});
  CHECK(rejected(order_saga::apply(declined.next, events::cancel_requested{})).status ==
        order_status::cancelled);

  // A second cancel of a cancelled order is refused by the saga (the HTTP route answers the
  // first cancel's outcome again).
  auto once = apply(state_in(order_status::placed), events::cancel_requested{});
  CHECK(rejected(order_saga::apply(once.next, events::cancel_requested{})).event ==
        saga_event_kind::cancel_requested);
}

TEST_CASE("every status x event pair is accepted exactly as the table says", "[saga]") {
  std::size_t accepted_pairs = 0;
  for (order_status status : all_order_statuses) {
    for (saga_event_kind kind : all_saga_event_kinds) {
      INFO(to_string(status) << " + " << to_string(kind));
      saga_result result = order_saga::apply(state_in(status), sample(kind));
      if (const expected_row* row = find_row(status, kind)) {
        ++accepted_pairs;
        saga_transition transition = accepted(result);
        CHECK(transition.next == row->next);
        CHECK(transition.commands == row->commands);
        CHECK(is_consistent(transition.next));
      } else {
        saga_rejection rejection = rejected(result);
        CHECK(rejection == saga_rejection{saga_error::event_does_not_fit, status, kind});
        std::string text = describe(rejection);
        CHECK(text.find(std::string(to_string(kind))) != std::string::npos);
        CHECK(text.find(std::string(to_string(status))) != std::string::npos);
      }
    }
  }
  CHECK(accepted_pairs == transition_table().size());
  CHECK(accepted_pairs == 21);
}

TEST_CASE("ended sagas refuse everything but a late capture on a cancelled order", "[saga]") {
  for (saga_event_kind kind : all_saga_event_kinds) {
    INFO(to_string(kind));
    for (order_status status : {order_status::confirmed, order_status::failed}) {
      auto rejection = rejected(order_saga::apply(state_in(status), sample(kind)));
      CHECK(rejection.error == saga_error::event_does_not_fit);
    }
    auto on_cancelled = order_saga::apply(state_in(order_status::cancelled), sample(kind));
    CHECK(std::holds_alternative<saga_transition>(on_cancelled) ==
          (kind == saga_event_kind::payment_captured));
  }
  CHECK(describe(saga_rejection{saga_error::event_does_not_fit, order_status::confirmed,
                                saga_event_kind::order_confirmed}) ==
        "event order_confirmed does not fit order status CONFIRMED (the saga has ended)");
  CHECK(describe(saga_rejection{saga_error::event_does_not_fit, order_status::placed,
                                saga_event_kind::payment_declined}) ==
        "event payment_declined does not fit order status PLACED");
}

TEST_CASE("duplicates and out-of-order events are refused", "[saga]") {
  saga_state validated = apply(saga_state{}, events::validation_passed{}).next;
  CHECK(rejected(order_saga::apply(validated, events::validation_passed{})).status ==
        order_status::validated);
  CHECK(rejected(order_saga::apply(validated, events::payment_captured{"ch"})).event ==
        saga_event_kind::payment_captured);
  CHECK(rejected(order_saga::apply(saga_state{}, events::order_confirmed{})).event ==
        saga_event_kind::order_confirmed);
}

TEST_CASE("a stored state whose flags contradict its status is refused", "[saga]") {
  for (order_status status : all_order_statuses) {
    INFO(to_string(status));
    saga_state good = state_in(status);
    REQUIRE(is_consistent(good));

    saga_state held_flipped = good;
    held_flipped.inventory_held = !good.inventory_held;
    saga_state captured_flipped = good;
    captured_flipped.payment_captured = !good.payment_captured;
    saga_state reason_flipped = good;
    reason_flipped.reason =
        good.reason ? std::nullopt : std::optional<cancel_reason>(cancel_reason::out_of_stock);

    for (const saga_state& bad : {held_flipped, captured_flipped, reason_flipped}) {
      CHECK_FALSE(is_consistent(bad));
      for (saga_event_kind kind : all_saga_event_kinds) {
        auto rejection = rejected(order_saga::apply(bad, sample(kind)));
        CHECK(rejection == saga_rejection{saga_error::inconsistent_state, status, kind});
      }
    }
  }
  CHECK(describe(saga_rejection{saga_error::inconsistent_state, order_status::placed,
                                saga_event_kind::validation_passed})
            .find("contradicts order status PLACED") != std::string::npos);
}

// Drives every sequence of events from a new order against a model of the outside world and
// checks that nothing is released twice, sold without a reservation, or kept when it should
// not be: a cancelled or failed order ends with no stock held and no money taken.
TEST_CASE("every event sequence keeps stock and money in line with the saga", "[saga]") {
  struct world {
    bool reserved = false;  // stock set aside for the order
    bool sold = false;
    bool money = false;  // captured at the gateway and not refunded
  };
  std::set<std::pair<order_status, saga_event_kind>> pairs_seen;
  std::set<order_status> statuses_seen;
  std::size_t transitions = 0;

  std::function<void(const saga_state&, world, int)> walk = [&](const saga_state& state,
                                                                world outside, int depth) {
    statuses_seen.insert(state.status);
    if (depth == 0)
      return;
    for (saga_event_kind kind : all_saga_event_kinds) {
      saga_result result = order_saga::apply(state, sample(kind));
      const auto* transition = std::get_if<saga_transition>(&result);
      if (transition == nullptr)
        continue;
      ++transitions;
      pairs_seen.insert({state.status, kind});
      INFO(to_string(state.status) << " + " << to_string(kind));

      world after = outside;
      if (kind == saga_event_kind::inventory_reserved)
        after.reserved = true;
      if (kind == saga_event_kind::payment_captured)
        after.money = true;
      std::size_t publishes = 0;
      for (const saga_command& command : transition->commands) {
        switch (command.kind) {
          case command_kind::publish:
            ++publishes;
            break;
          case command_kind::release_inventory:
            CHECK(after.reserved);
            after.reserved = false;
            break;
          case command_kind::commit_inventory:
            CHECK(after.reserved);
            after.reserved = false;
            after.sold = true;
            break;
          case command_kind::refund_payment:
            after.money = false;
            break;
        }
      }
      const saga_state& next = transition->next;
      CHECK(is_consistent(next));
      CHECK(next.inventory_held == after.reserved);
      CHECK(next.payment_captured == after.money);
      // One event per status change, none when the status stays.
      CHECK(publishes == (next.status != state.status ? 1u : 0u));
      if (next.status == order_status::confirmed) {
        CHECK(after.sold);
        CHECK(after.money);
      }
      if (next.status == order_status::cancelled || next.status == order_status::failed) {
        CHECK_FALSE(after.reserved);
        CHECK_FALSE(after.sold);
        CHECK_FALSE(after.money);
      }
      walk(next, after, depth - 1);
    }
  };
  walk(saga_state{}, world{}, 7);

  CHECK(statuses_seen.size() == all_order_statuses.size());
  CHECK(pairs_seen.size() == transition_table().size());
  CHECK(transitions > 0);
}
