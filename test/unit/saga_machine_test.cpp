// The generic saga machine: a shop's own steps, orders in flight across a change of steps,
// definition rules, and the consistency of every state it returns.

#include "saga/domain/saga_machine.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstddef>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "orders/domain/order_saga_definition.hpp"
#include "saga/domain/saga_definition.hpp"

using op::saga::definition_error;
using op::saga::definition_rule;
using op::saga::event_kind;
using op::saga::saga_command;
using op::saga::saga_definition;
using op::saga::saga_error;
using op::saga::saga_event;
using op::saga::saga_rejection;
using op::saga::saga_result;
using op::saga::saga_state;
using op::saga::saga_transition;
using op::saga::step_definition;
namespace events = op::saga::events;
namespace saga = op::saga;

namespace Catch {
template <>
struct StringMaker<saga_command> {
  static std::string convert(const saga_command& value) { return to_string(value); }
};
template <>
struct StringMaker<saga_state> {
  static std::string convert(const saga_state& value) {
    std::string out = "{" + value.status + ", steps=[";
    for (const auto& step : value.steps)
      out += step + " ";
    out += "], position=" + std::to_string(value.position) + ", reason=" + value.reason +
           ", detail=\"" + value.detail + "\", owed=[";
    for (const auto& step : value.owed)
      out += step + " ";
    return out + "]}";
  }
};
}  // namespace Catch

namespace {

const saga_command publish_failed = saga_command::publish_failed();
saga_command compensate(const char* step) {
  return saga_command::compensate(step);
}
saga_command finalize(const char* step) {
  return saga_command::finalize(step);
}
saga_command published(const char* step) {
  return saga_command::publish_succeeded(step);
}

step_definition step(std::string name, std::string status, std::string timeout_reason) {
  step_definition out;
  out.name = std::move(name);
  out.status = std::move(status);
  out.timeout_reason = std::move(timeout_reason);
  return out;
}

saga_definition make(std::vector<step_definition> steps) {
  auto result = saga_definition::make(std::move(steps));
  if (const auto* error = std::get_if<definition_error>(&result))
    FAIL("definition refused: " << describe(*error));
  return std::get<saga_definition>(std::move(result));
}

definition_error refused(std::vector<step_definition> steps) {
  auto result = saga_definition::make(std::move(steps));
  const auto* error = std::get_if<definition_error>(&result);
  if (error == nullptr)
    FAIL("definition accepted");
  return *error;
}

// The built-in steps with a shop's step inserted before pay.
saga_definition with_step_before_pay(const step_definition& extra) {
  std::vector<step_definition> steps = op::orders::order_saga_definition().steps();
  steps.insert(steps.begin() + 2, extra);
  return make(std::move(steps));
}

// A fraud screen: no status of its own, nothing to undo.
step_definition screen() {
  return step("screen", "", "SCREENING_TIMEOUT");
}

const saga_definition& four_steps() {
  return op::orders::order_saga_definition();
}
const saga_definition& five_steps() {
  static const saga_definition definition = with_step_before_pay(screen());
  return definition;
}

saga_transition accepted(const saga_result& result) {
  const auto* transition = std::get_if<saga_transition>(&result);
  if (transition == nullptr)
    FAIL("refused: " << describe(std::get<saga_rejection>(result)));
  return *transition;
}

saga_rejection rejected(const saga_result& result) {
  const auto* rejection = std::get_if<saga_rejection>(&result);
  if (rejection == nullptr)
    FAIL("accepted, moving to " << std::get<saga_transition>(result).next.status);
  return *rejection;
}

saga_transition decide(const saga_definition& definition, const saga_state& state,
                       const saga_event& event) {
  return accepted(saga::apply(definition, state, event));
}

// Runs the named steps' successes from a fresh saga under `definition`.
saga_state after(const saga_definition& definition, std::vector<std::string> succeeded,
                 saga_state state) {
  for (const auto& name : succeeded)
    state = decide(definition, state, events::step_succeeded{name}).next;
  return state;
}

}  // namespace

TEST_CASE("a shop's screen step between reserve and pay runs like the built-in ones", "[saga]") {
  const saga_definition& definition = five_steps();
  saga_state reserved = after(definition, {"validate", "reserve"}, saga::start(definition));
  CHECK(reserved.status == "INVENTORY_RESERVED");
  CHECK(saga::awaited_step(definition, reserved) == "screen");

  SECTION("screened: the status stays and pay comes next") {
    auto screened = decide(definition, reserved, events::step_succeeded{"screen"});
    CHECK(screened.next.status == "INVENTORY_RESERVED");
    CHECK(screened.next.owed == std::vector<std::string>{"reserve"});
    CHECK(screened.commands == std::vector{published("screen")});
    CHECK(saga::awaited_step(definition, screened.next) == "pay");

    auto paid = decide(definition, screened.next, events::step_succeeded{"pay"});
    auto confirmed = decide(definition, paid.next, events::step_succeeded{"confirm"});
    CHECK(confirmed.next.status == "CONFIRMED");
    CHECK(confirmed.next.owed == std::vector<std::string>{"pay"});
    CHECK(confirmed.commands == std::vector{finalize("reserve"), published("confirm")});
    CHECK_FALSE(saga::awaited_step(definition, confirmed.next).has_value());
  }
  SECTION("fraud suspected: the reservation is released, nothing else") {
    auto fraud = decide(definition, reserved,
                        events::step_rejected{"screen", "FRAUD_SUSPECTED", "score 97"});
    CHECK(fraud.next.status == "CANCELLED");
    CHECK(fraud.next.reason == "FRAUD_SUSPECTED");
    CHECK(fraud.next.detail == "score 97");
    CHECK(fraud.next.owed.empty());
    CHECK(fraud.commands == std::vector{compensate("reserve"), publish_failed});
  }
  SECTION("card declined after the screen: the reservation is released") {
    saga_state screened = after(definition, {"screen"}, reserved);
    auto declined =
        decide(definition, screened, events::step_rejected{"pay", "PAYMENT_DECLINED", "declined"});
    CHECK(declined.next.reason == "PAYMENT_DECLINED");
    CHECK(declined.commands == std::vector{compensate("reserve"), publish_failed});
  }
  SECTION("pay before the screen passed is out of order") {
    auto early = rejected(saga::apply(definition, reserved, events::step_succeeded{"pay"}));
    CHECK(early.error == saga_error::event_does_not_fit);
    CHECK(early.step == "pay");
    CHECK(saga::describe(early) ==
          "event step_succeeded(pay) does not fit order status INVENTORY_RESERVED");
  }
  SECTION("the screen's deadline cancels with its own reason") {
    auto late = decide(definition, reserved, events::deadline_expired{});
    CHECK(late.next.reason == "SCREENING_TIMEOUT");
    CHECK(late.commands == std::vector{compensate("reserve"), publish_failed});
  }
  SECTION("the screen gives up without a failure reason: the order fails") {
    auto gave_up = decide(definition, reserved, events::step_gave_up{"screen", "503 x3"});
    CHECK(gave_up.next.status == "FAILED");
    CHECK(gave_up.next.reason.empty());
    CHECK(gave_up.next.detail == "503 x3");
    CHECK(gave_up.commands == std::vector{compensate("reserve"), publish_failed});
  }
}

TEST_CASE("a shop's step with a compensation is undone before the steps it followed", "[saga]") {
  step_definition hold = step("loyalty-hold", "POINTS_HELD", "LOYALTY_TIMEOUT");
  hold.has_compensation = true;
  const saga_definition definition = with_step_before_pay(hold);
  saga_state held =
      after(definition, {"validate", "reserve", "loyalty-hold"}, saga::start(definition));
  CHECK(held.status == "POINTS_HELD");
  CHECK(held.owed == std::vector<std::string>{"reserve", "loyalty-hold"});

  auto declined =
      decide(definition, held, events::step_rejected{"pay", "PAYMENT_DECLINED", "declined"});
  CHECK(declined.commands ==
        std::vector{compensate("loyalty-hold"), compensate("reserve"), publish_failed});

  // Pay given up: the charge may have landed; it is the newest, so it is refunded first.
  auto gave_up = decide(definition, held, events::step_gave_up{"pay", "timeouts"});
  CHECK(gave_up.next.reason == "PAYMENT_FAILED");
  CHECK(gave_up.commands == std::vector{compensate("pay"), compensate("loyalty-hold"),
                                        compensate("reserve"), publish_failed});

  saga_state paid = after(definition, {"pay"}, held);
  auto cancelled = decide(definition, paid, events::cancel_requested{});
  CHECK(cancelled.next.reason == "CUSTOMER_CANCELLED");
  CHECK(cancelled.commands == std::vector{compensate("pay"), compensate("loyalty-hold"),
                                          compensate("reserve"), publish_failed});
}

TEST_CASE("a saga started under four steps keeps them under a five-step release", "[saga]") {
  saga_state reserved = after(four_steps(), {"validate", "reserve"}, saga::start(four_steps()));
  CHECK_FALSE(saga::is_part_of(reserved, "screen"));
  CHECK(saga::is_part_of(reserved, "pay"));
  CHECK(saga::awaited_step(five_steps(), reserved) == "pay");

  // The engine passes a screen message on; the machine refuses it as not this saga's step.
  auto screen_event = rejected(saga::apply(
      five_steps(), reserved, events::step_rejected{"screen", "FRAUD_SUSPECTED", "score 97"}));
  CHECK(screen_event.error == saga_error::step_not_in_saga);
  CHECK(screen_event.step == "screen");

  auto paid = decide(five_steps(), reserved, events::step_succeeded{"pay"});
  CHECK(paid.next.status == "PAYMENT_PROCESSED");
  auto confirmed = decide(five_steps(), paid.next, events::step_succeeded{"confirm"});
  CHECK(confirmed.next.status == "CONFIRMED");
  CHECK(confirmed.commands == std::vector{finalize("reserve"), published("confirm")});
}

TEST_CASE("a saga waiting for screen skips it under a release without it", "[saga]") {
  saga_state reserved = after(five_steps(), {"validate", "reserve"}, saga::start(five_steps()));
  REQUIRE(saga::awaited_step(five_steps(), reserved) == "screen");
  CHECK(saga::is_part_of(reserved, "screen"));
  CHECK(saga::awaited_step(four_steps(), reserved) == "pay");

  auto screened = rejected(saga::apply(four_steps(), reserved, events::step_succeeded{"screen"}));
  CHECK(screened.error == saga_error::step_not_declared);

  // The skipped screen never ran: its deadline names pay's reason and undoes only what ran.
  auto late = decide(four_steps(), reserved, events::deadline_expired{});
  CHECK(late.next.reason == "PAYMENT_TIMEOUT");
  CHECK(late.commands == std::vector{compensate("pay"), compensate("reserve"), publish_failed});

  auto paid = decide(four_steps(), reserved, events::step_succeeded{"pay"});
  CHECK(paid.next.status == "PAYMENT_PROCESSED");
  CHECK(paid.next.owed == std::vector<std::string>{"reserve", "pay"});
  CHECK(paid.next.steps == five_steps().step_names());
  auto confirmed = decide(four_steps(), paid.next, events::step_succeeded{"confirm"});
  CHECK(confirmed.next.status == "CONFIRMED");
}

TEST_CASE("an owed compensation the running release no longer declares goes to an operator",
          "[saga]") {
  step_definition hold = step("loyalty-hold", "POINTS_HELD", "LOYALTY_TIMEOUT");
  hold.has_compensation = true;
  const saga_definition with_hold = with_step_before_pay(hold);
  saga_state held =
      after(with_hold, {"validate", "reserve", "loyalty-hold"}, saga::start(with_hold));

  // The release without loyalty-hold cannot undo it, but says so in its place in the order.
  auto declined =
      decide(four_steps(), held, events::step_rejected{"pay", "PAYMENT_DECLINED", "declined"});
  CHECK(declined.commands == std::vector{saga_command::compensate_by_operator("loyalty-hold"),
                                         compensate("reserve"), publish_failed});
  CHECK(declined.next.owed.empty());
  CHECK(to_string(declined.commands.front()) == "compensate_by_operator(loyalty-hold)");

  // Completed under that release: the hold is neither finalized nor forgotten.
  saga_state paid = after(four_steps(), {"pay"}, held);
  auto confirmed = decide(four_steps(), paid, events::step_succeeded{"confirm"});
  CHECK(confirmed.next.owed == std::vector<std::string>{"loyalty-hold", "pay"});
}

TEST_CASE("a saga whose remaining steps are all withdrawn fails at its deadline", "[saga]") {
  step_definition ship = step("ship", "", "SHIPPING_TIMEOUT");
  std::vector<step_definition> steps = four_steps().steps();
  steps.back().status = "ORDER_CONFIRMED";  // confirm is no longer last
  steps.push_back(ship);
  const saga_definition with_ship = make(steps);
  saga_state confirmed =
      after(with_ship, {"validate", "reserve", "pay", "confirm"}, saga::start(with_ship));
  REQUIRE(confirmed.status == "ORDER_CONFIRMED");
  CHECK(saga::awaited_step(four_steps(), confirmed) == "ship");

  auto stranded = decide(four_steps(), confirmed, events::deadline_expired{});
  CHECK(stranded.next.status == "FAILED");
  CHECK(stranded.next.detail ==
        "waited for step ship, which the running saga definition no longer declares");
  CHECK(stranded.commands == std::vector{compensate("pay"), compensate("reserve"), publish_failed});

  // Under a release that drops ship before confirm ran, confirm's success completes the saga.
  saga_state paid = after(with_ship, {"validate", "reserve", "pay"}, saga::start(with_ship));
  CHECK(decide(four_steps(), paid, events::step_succeeded{"confirm"}).next.status == "CONFIRMED");
}

TEST_CASE("events that do not fit are refused with a reason", "[saga]") {
  const saga_definition& definition = four_steps();
  saga_state placed = saga::start(definition);

  auto unknown = rejected(saga::apply(definition, placed, events::step_succeeded{"ship"}));
  CHECK(unknown.error == saga_error::step_not_in_saga);
  CHECK(saga::describe(unknown) ==
        "event step_succeeded(ship): step ship is not in this saga's step list (the saga "
        "started without it)");

  auto no_reason =
      rejected(saga::apply(definition, placed, events::step_rejected{"validate", "", "bad"}));
  CHECK(no_reason.error == saga_error::malformed_event);

  saga_state validated = after(definition, {"validate"}, placed);
  auto duplicate = rejected(saga::apply(definition, validated, events::step_succeeded{"validate"}));
  CHECK(duplicate.error == saga_error::event_does_not_fit);
  CHECK(duplicate.status == "VALIDATED");

  saga_state confirmed = after(definition, {"reserve", "pay", "confirm"}, validated);
  auto ended = rejected(saga::apply(definition, confirmed, events::cancel_requested{}));
  CHECK(saga::describe(ended) ==
        "event cancel_requested does not fit order status CONFIRMED (the "
        "saga has ended)");

  saga_state broken = validated;
  broken.owed = {"reserve"};  // owed although reserve has not run
  auto inconsistent = rejected(saga::apply(definition, broken, events::cancel_requested{}));
  CHECK(inconsistent.error == saga_error::inconsistent_state);
}

TEST_CASE("a late success of a late-landing step is undone after any cancellation", "[saga]") {
  const saga_definition& definition = five_steps();
  saga_state screened =
      after(definition, {"validate", "reserve", "screen"}, saga::start(definition));
  auto timed_out = decide(definition, screened, events::deadline_expired{});
  REQUIRE(timed_out.next.reason == "PAYMENT_TIMEOUT");
  auto late = decide(definition, timed_out.next, events::step_succeeded{"pay"});
  CHECK(late.next == timed_out.next);
  CHECK(late.commands == std::vector{compensate("pay")});
  // screen and reserve cannot land late: their late success is refused.
  CHECK(rejected(saga::apply(definition, timed_out.next, events::step_succeeded{"screen"})).error ==
        saga_error::event_does_not_fit);
}

TEST_CASE("definitions that break a rule are refused, naming the step and the rule", "[saga]") {
  using r = definition_rule;
  CHECK(refused({}) == definition_error{r::no_steps, 0, ""});
  CHECK(describe(refused({})) == "a saga needs at least one step");

  auto with = [](std::size_t index, auto change) {
    std::vector<step_definition> steps = four_steps().steps();
    change(steps[index]);
    return refused(std::move(steps));
  };
  CHECK(with(1, [](step_definition& s) { s.name = "Reserve"; }) ==
        definition_error{r::bad_step_name, 1, "Reserve"});
  CHECK(with(1, [](step_definition& s) { s.name = ""; }).rule == r::bad_step_name);
  CHECK(with(1, [](step_definition& s) { s.name = "re serve"; }).rule == r::bad_step_name);
  CHECK(with(2, [](step_definition& s) { s.name = "validate"; }) ==
        definition_error{r::duplicate_step_name, 2, "validate"});
  CHECK(with(0, [](step_definition& s) { s.status = "Validated"; }).rule == r::bad_status);
  CHECK(with(0, [](step_definition& s) { s.status = "CANCELLED"; }).rule == r::reserved_status);
  CHECK(with(0, [](step_definition& s) { s.status = "PLACED"; }).rule == r::reserved_status);
  CHECK(with(1, [](step_definition& s) { s.status = "CONFIRMED"; }).rule == r::reserved_status);
  CHECK(with(3, [](step_definition& s) { s.status = "SHIPPED"; }) ==
        definition_error{r::last_step_status, 3, "confirm"});
  CHECK(with(2, [](step_definition& s) { s.timeout_reason = ""; }).rule == r::bad_timeout_reason);
  CHECK(with(2, [](step_definition& s) { s.failure_reason = "failed"; }).rule ==
        r::bad_failure_reason);
  auto late = with(2, [](step_definition& s) { s.has_compensation = false; });
  CHECK(late == definition_error{r::late_landing_without_compensation, 2, "pay"});
  CHECK(describe(late) == "step 3 (pay): may land late but has no compensation");
  CHECK(with(1, [](step_definition& s) { s.has_compensation = false; }).rule ==
        r::finalizer_without_compensation);

  // Empty statuses are allowed, the last one included: it still shows CONFIRMED.
  std::vector<step_definition> quiet = four_steps().steps();
  quiet[0].status = "";
  quiet[3].status = "";
  saga_definition definition = make(quiet);
  saga_state done =
      after(definition, {"validate", "reserve", "pay", "confirm"}, saga::start(definition));
  CHECK(done.status == "CONFIRMED");
}

TEST_CASE("every state apply returns is consistent", "[saga]") {
  // The states reachable from a fresh saga under the 5-step definition, and what the 4-step one
  // makes of them, explored breadth-first over every event kind and step.
  step_definition hold = step("hold", "", "HOLD_TIMEOUT");
  hold.has_compensation = true;
  hold.may_land_late = true;
  std::vector<step_definition> steps = five_steps().steps();
  steps.insert(steps.begin() + 1, hold);
  const saga_definition six = make(steps);
  const std::vector<const saga_definition*> definitions = {&six, &five_steps(), &four_steps()};

  std::vector<saga_event> all_events = {events::deadline_expired{},
                                        events::processing_failed{"dead letter"},
                                        events::cancel_requested{}};
  for (const auto& name : six.step_names()) {
    all_events.push_back(events::step_succeeded{name});
    all_events.push_back(events::step_rejected{name, "NO", "no"});
    all_events.push_back(events::step_gave_up{name, "gave up"});
  }

  std::vector<saga_state> seen;
  std::vector<saga_state> frontier;
  for (const auto* definition : definitions)
    frontier.push_back(saga::start(*definition));
  std::size_t transitions = 0;
  while (!frontier.empty()) {
    saga_state state = frontier.back();
    frontier.pop_back();
    if (std::find(seen.begin(), seen.end(), state) != seen.end())
      continue;
    seen.push_back(state);
    for (const auto* definition : definitions) {
      for (const auto& event : all_events) {
        saga_result result = saga::apply(*definition, state, event);
        const auto* transition = std::get_if<saga_transition>(&result);
        if (transition == nullptr)
          continue;
        ++transitions;
        INFO(Catch::StringMaker<saga_state>::convert(state)
             << " + " << to_string(saga::kind_of(event)) << " -> "
             << Catch::StringMaker<saga_state>::convert(transition->next));
        CHECK(saga::is_consistent(transition->next));
        CHECK(!transition->commands.empty());
        frontier.push_back(transition->next);
      }
    }
  }
  CHECK(seen.size() > 50);
  CHECK(transitions > 200);
}
