// The generic saga machine running the built-in definition decides exactly as order_saga does,
// for every consistent order_saga state and every event kind.

#include "orders/domain/order_saga_definition.hpp"

#include <catch2/catch.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "orders/domain/order_status.hpp"
#include "reference/order_saga.hpp"
#include "saga/domain/saga_machine.hpp"

namespace orders = op::orders;
namespace saga = op::saga;

namespace {

const std::vector<std::string> order_steps = {"validate", "reserve", "pay", "confirm"};

// Every consistent state of order_saga: each status with its flags, each reason when
// CANCELLED, with and without a detail.
std::vector<orders::saga_state> all_consistent_order_states() {
  std::vector<orders::saga_state> out;
  for (orders::order_status status : orders::all_order_statuses) {
    std::vector<std::optional<orders::cancel_reason>> reasons = {std::nullopt};
    if (status == orders::order_status::cancelled)
      reasons.assign(orders::all_cancel_reasons.begin(), orders::all_cancel_reasons.end());
    for (const auto& reason : reasons) {
      for (const char* detail : {"", "earlier detail"}) {
        orders::saga_state state;
        state.status = status;
        state.reason = reason;
        state.detail = detail;
        state.inventory_held = status == orders::order_status::inventory_reserved ||
                               status == orders::order_status::payment_processed;
        state.payment_captured = status == orders::order_status::payment_processed ||
                                 status == orders::order_status::confirmed;
        REQUIRE(orders::is_consistent(state));
        out.push_back(state);
      }
    }
  }
  return out;
}

// The generic states an order_saga state stands for. An ended saga may have stopped at any
// step, so CANCELLED and FAILED map to every position.
std::vector<saga::saga_state> to_generic(const orders::saga_state& state) {
  saga::saga_state base;
  base.status = std::string(to_string(state.status));
  base.steps = order_steps;
  base.reason = state.reason ? std::string(to_string(*state.reason)) : "";
  base.detail = state.detail;
  if (state.inventory_held)
    base.owed.push_back("reserve");
  if (state.payment_captured)
    base.owed.push_back("pay");
  std::vector<std::size_t> positions;
  switch (state.status) {
    case orders::order_status::placed:
      positions = {0};
      break;
    case orders::order_status::validated:
      positions = {1};
      break;
    case orders::order_status::inventory_reserved:
      positions = {2};
      break;
    case orders::order_status::payment_processed:
      positions = {3};
      break;
    case orders::order_status::confirmed:
      positions = {4};
      break;
    case orders::order_status::cancelled:
    case orders::order_status::failed:
      positions = {0, 1, 2, 3, 4};
      break;
  }
  std::vector<saga::saga_state> out;
  for (std::size_t position : positions) {
    base.position = position;
    out.push_back(base);
  }
  return out;
}

// One event of each kind, every free-text field naming its kind so it can be seen to travel.
orders::saga_event order_event(orders::saga_event_kind kind) {
  using k = orders::saga_event_kind;
  namespace e = orders::events;
  switch (kind) {
    case k::validation_passed:
      return e::validation_passed{};
    case k::validation_failed:
      return e::validation_failed{"detail of validation_failed"};
    case k::inventory_reserved:
      return e::inventory_reserved{};
    case k::out_of_stock:
      return e::out_of_stock{"detail of out_of_stock"};
    case k::payment_captured:
      return e::payment_captured{"ch_123"};
    case k::payment_declined:
      return e::payment_declined{"detail of payment_declined"};
    case k::payment_failed:
      return e::payment_failed{"detail of payment_failed"};
    case k::order_confirmed:
      return e::order_confirmed{};
    case k::deadline_expired:
      return e::deadline_expired{};
    case k::processing_failed:
      return e::processing_failed{"detail of processing_failed"};
    case k::cancel_requested:
      return e::cancel_requested{};
  }
  FAIL("unknown event kind");
  return e::validation_passed{};
}

saga::saga_event to_generic(orders::saga_event_kind kind) {
  using k = orders::saga_event_kind;
  namespace e = saga::events;
  switch (kind) {
    case k::validation_passed:
      return e::step_succeeded{"validate"};
    case k::validation_failed:
      return e::step_rejected{"validate", "VALIDATION_FAILED", "detail of validation_failed"};
    case k::inventory_reserved:
      return e::step_succeeded{"reserve"};
    case k::out_of_stock:
      return e::step_rejected{"reserve", "OUT_OF_STOCK", "detail of out_of_stock"};
    case k::payment_captured:
      return e::step_succeeded{"pay"};
    case k::payment_declined:
      return e::step_rejected{"pay", "PAYMENT_DECLINED", "detail of payment_declined"};
    case k::payment_failed:
      return e::step_gave_up{"pay", "detail of payment_failed"};
    case k::order_confirmed:
      return e::step_succeeded{"confirm"};
    case k::deadline_expired:
      return e::deadline_expired{};
    case k::processing_failed:
      return e::processing_failed{"detail of processing_failed"};
    case k::cancel_requested:
      return e::cancel_requested{};
  }
  FAIL("unknown event kind");
  return e::cancel_requested{};
}

std::string step_of(orders::topic_kind topic) {
  switch (topic) {
    case orders::topic_kind::order_validated:
      return "validate";
    case orders::topic_kind::inventory_reserved:
      return "reserve";
    case orders::topic_kind::payment_processed:
      return "pay";
    case orders::topic_kind::order_confirmed:
      return "confirm";
    case orders::topic_kind::order_failed:
      break;
  }
  return "?";
}

saga::saga_command to_generic(const orders::saga_command& command) {
  switch (command.kind) {
    case orders::command_kind::release_inventory:
      return saga::saga_command::compensate("reserve");
    case orders::command_kind::refund_payment:
      return saga::saga_command::compensate("pay");
    case orders::command_kind::commit_inventory:
      return saga::saga_command::finalize("reserve");
    case orders::command_kind::publish:
      if (command.topic == orders::topic_kind::order_failed)
        return saga::saga_command::publish_failed();
      return saga::saga_command::publish_succeeded(step_of(command.topic.value()));
  }
  FAIL("unknown command kind");
  return saga::saga_command::publish_failed();
}

bool owes(const saga::saga_state& state, const std::string& step) {
  for (const auto& owed : state.owed) {
    if (owed == step)
      return true;
  }
  return false;
}

}  // namespace

namespace Catch {
template <>
struct StringMaker<saga::saga_command> {
  static std::string convert(const saga::saga_command& value) { return to_string(value); }
};
}  // namespace Catch

TEST_CASE("the built-in definition declares the four order steps with their reasons", "[saga]") {
  const saga::saga_definition& definition = orders::order_saga_definition();
  CHECK(definition.step_names() == order_steps);
  const saga::step_definition* pay = definition.find("pay");
  REQUIRE(pay != nullptr);
  CHECK(pay->status == "PAYMENT_PROCESSED");
  CHECK(pay->has_compensation);
  CHECK(pay->may_land_late);
  CHECK_FALSE(pay->has_finalizer);
  CHECK(pay->timeout_reason == "PAYMENT_TIMEOUT");
  CHECK(pay->failure_reason == "PAYMENT_FAILED");
  const saga::step_definition* reserve = definition.find("reserve");
  REQUIRE(reserve != nullptr);
  CHECK(reserve->has_compensation);
  CHECK(reserve->has_finalizer);
  CHECK_FALSE(reserve->may_land_late);
  CHECK(definition.find("validate")->timeout_reason == "VALIDATION_TIMEOUT");
  CHECK(definition.find("confirm")->timeout_reason == "CONFIRMATION_TIMEOUT");
  CHECK(saga::start(definition).steps == order_steps);
}

TEST_CASE("the generic machine with the built-in definition decides as order_saga does", "[saga]") {
  const saga::saga_definition& definition = orders::order_saga_definition();
  std::size_t compared = 0;
  std::size_t accepted = 0;
  for (const orders::saga_state& old_state : all_consistent_order_states()) {
    for (orders::saga_event_kind kind : orders::all_saga_event_kinds) {
      orders::saga_result expected = orders::order_saga::apply(old_state, order_event(kind));
      for (const saga::saga_state& state : to_generic(old_state)) {
        INFO(to_string(old_state.status)
             << " reason=" << state.reason << " detail=\"" << state.detail
             << "\" position=" << state.position << " + " << to_string(kind));
        REQUIRE(saga::is_consistent(state));
        ++compared;
        saga::saga_result actual = saga::apply(definition, state, to_generic(kind));
        if (const auto* refusal = std::get_if<orders::saga_rejection>(&expected)) {
          const auto* rejection = std::get_if<saga::saga_rejection>(&actual);
          REQUIRE(rejection != nullptr);
          CHECK(refusal->error == orders::saga_error::event_does_not_fit);
          CHECK(rejection->error == saga::saga_error::event_does_not_fit);
          CHECK(rejection->status == state.status);
          continue;
        }
        const auto& want = std::get<orders::saga_transition>(expected);
        const auto* got = std::get_if<saga::saga_transition>(&actual);
        if (got == nullptr)
          FAIL("refused: " << describe(std::get<saga::saga_rejection>(actual)));
        ++accepted;
        CHECK(got->next.status == to_string(want.next.status));
        CHECK(got->next.reason == (want.next.reason ? to_string(*want.next.reason) : ""));
        CHECK(got->next.detail == want.next.detail);
        CHECK(owes(got->next, "reserve") == want.next.inventory_held);
        CHECK(owes(got->next, "pay") == want.next.payment_captured);
        std::vector<saga::saga_command> want_commands;
        for (const auto& command : want.commands)
          want_commands.push_back(to_generic(command));
        CHECK(got->commands == want_commands);
        CHECK(got->next.steps == order_steps);
      }
    }
  }
  // 7 statuses, 9 reasons for CANCELLED, 2 details, 5 positions for the ended ones, 11 events.
  CHECK(compared == (4 * 2 + 1 * 2 + 9 * 2 * 5 + 2 * 5) * 11);
  CHECK(accepted > 0);
}
