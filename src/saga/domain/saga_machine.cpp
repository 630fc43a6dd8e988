#include "saga/domain/saga_machine.hpp"

#include <algorithm>
#include <type_traits>
#include <utility>

namespace op::saga {

namespace {

template <event_kind kind, typename event>
constexpr bool kind_matches =
    std::is_same_v<std::variant_alternative_t<static_cast<std::size_t>(kind), saga_event>, event>;
static_assert(kind_matches<event_kind::step_succeeded, events::step_succeeded>);
static_assert(kind_matches<event_kind::step_rejected, events::step_rejected>);
static_assert(kind_matches<event_kind::step_gave_up, events::step_gave_up>);
static_assert(kind_matches<event_kind::deadline_expired, events::deadline_expired>);
static_assert(kind_matches<event_kind::processing_failed, events::processing_failed>);
static_assert(kind_matches<event_kind::cancel_requested, events::cancel_requested>);

bool is_reason(std::string_view text) {
  if (text.empty() || text.front() < 'A' || text.front() > 'Z')
    return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool is_step_name(std::string_view text) {
  if (text.empty() || text.front() < 'a' || text.front() > 'z')
    return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

std::optional<std::size_t> index_of(const std::vector<std::string>& names, std::string_view name) {
  auto it = std::find(names.begin(), names.end(), name);
  if (it == names.end())
    return std::nullopt;
  return static_cast<std::size_t>(it - names.begin());
}

// The first step of the saga's list at or after `from` that the definition declares.
std::optional<std::size_t> next_declared(const saga_definition& definition, const saga_state& state,
                                         std::size_t from) {
  for (std::size_t i = from; i < state.steps.size(); ++i) {
    if (definition.find(state.steps[i]) != nullptr)
      return i;
  }
  return std::nullopt;
}

// Decides one event against one consistent, running or ended state.
class transition_rules {
 public:
  transition_rules(const saga_definition& definition, const saga_state& state, event_kind kind)
      : definition_(definition), state_(state), kind_(kind) {}

  saga_result operator()(const events::step_succeeded& event) const {
    const step_definition* step = nullptr;
    if (auto refusal = check_step(event.step, step))
      return *refusal;
    if (state_.status == cancelled_status && step->may_land_late) {
      // The effect landed after the saga gave it up (deadline, cancel, retries): undo it and
      // leave the cancellation as it is.
      return saga_transition{state_, {saga_command::compensate(step->name)}};
    }
    if (!awaits(event.step))
      return refuse(saga_error::event_does_not_fit, event.step);

    saga_transition out{state_, {}};
    if (step->has_compensation)
      out.next.owed.push_back(step->name);
    if (!step->status.empty())
      out.next.status = step->status;
    std::size_t done = *index_of(state_.steps, event.step);
    if (next_declared(definition_, state_, done + 1)) {
      // Stored as a place in the saga's own list; an undeclared step there is skipped when read.
      out.next.position = done + 1;
    } else {
      complete(out);
    }
    out.commands.push_back(saga_command::publish_succeeded(step->name));
    return out;
  }

  saga_result operator()(const events::step_rejected& event) const {
    const step_definition* step = nullptr;
    if (auto refusal = check_step(event.step, step))
      return *refusal;
    if (!is_reason(event.reason))
      return refuse(saga_error::malformed_event, event.step);
    if (!awaits(event.step))
      return refuse(saga_error::event_does_not_fit, event.step);
    // A business "no": the step did nothing, so only the earlier steps are undone.
    return end(cancelled_status, event.reason, event.detail, nullptr);
  }

  saga_result operator()(const events::step_gave_up& event) const {
    const step_definition* step = nullptr;
    if (auto refusal = check_step(event.step, step))
      return *refusal;
    if (!awaits(event.step))
      return refuse(saga_error::event_does_not_fit, event.step);
    if (step->failure_reason.empty())
      return end(failed_status, {}, event.detail, step);
    return end(cancelled_status, step->failure_reason, event.detail, step);
  }

  saga_result operator()(const events::deadline_expired&) const {
    if (is_ended(state_))
      return refuse(saga_error::event_does_not_fit, {});
    const step_definition* step = awaited();
    if (step == nullptr) {
      // Only steps this release does not declare are left: nothing could ever arrive.
      return end(failed_status, {},
                 "waited for step " + state_.steps[state_.position] +
                     ", which the running saga definition no longer declares",
                 nullptr);
    }
    return end(cancelled_status, step->timeout_reason, {}, step);
  }

  saga_result operator()(const events::processing_failed& event) const {
    if (is_ended(state_))
      return refuse(saga_error::event_does_not_fit, {});
    // Dead-lettered while a late-landing step was awaited: its effect may have landed.
    return end(failed_status, {}, event.detail, awaited());
  }

  saga_result operator()(const events::cancel_requested&) const {
    if (is_ended(state_))
      return refuse(saga_error::event_does_not_fit, {});
    // The awaited step's late-landing effect is undone now if it landed, or when its success
    // reaches the cancelled saga.
    return end(cancelled_status, std::string(customer_cancelled_reason),
               std::string(customer_cancelled_detail), awaited());
  }

 private:
  saga_rejection refuse(saga_error error, std::string step) const {
    return {error, state_.status, kind_, std::move(step)};
  }

  // Refuses a step that is not the saga's or that this release does not declare.
  std::optional<saga_rejection> check_step(const std::string& name,
                                           const step_definition*& step) const {
    if (!is_part_of(state_, name))
      return refuse(saga_error::step_not_in_saga, name);
    step = definition_.find(name);
    if (step == nullptr)
      return refuse(saga_error::step_not_declared, name);
    return std::nullopt;
  }

  // The declared step the running saga waits for; nullptr once ended or when none is left.
  const step_definition* awaited() const {
    if (is_ended(state_))
      return nullptr;
    auto at = next_declared(definition_, state_, state_.position);
    return at ? definition_.find(state_.steps[*at]) : nullptr;
  }

  bool awaits(std::string_view name) const {
    const step_definition* step = awaited();
    return step != nullptr && step->name == name;
  }

  // The whole saga succeeded: held effects that have a finalizer become final, in step order.
  void complete(saga_transition& out) const {
    out.next.status = std::string(confirmed_status);
    out.next.position = state_.steps.size();
    std::vector<std::string> still_owed;
    for (const std::string& name : out.next.owed) {
      const step_definition* step = definition_.find(name);
      if (step != nullptr && step->has_finalizer)
        out.commands.push_back(saga_command::finalize(name));
      else
        still_owed.push_back(name);
    }
    out.next.owed = std::move(still_owed);
  }

  // Ends the saga, undoing what it holds newest step first. `given_up` is the awaited step the
  // saga stops waiting for; its effect is undone too when it may land late.
  saga_transition end(std::string_view status, std::string reason, std::string detail,
                      const step_definition* given_up) const {
    saga_transition out{state_, {}};
    out.next.status = std::string(status);
    out.next.reason = std::move(reason);
    out.next.detail = std::move(detail);
    out.next.owed.clear();
    if (given_up != nullptr && given_up->may_land_late)
      out.commands.push_back(saga_command::compensate(given_up->name));
    for (auto it = state_.owed.rbegin(); it != state_.owed.rend(); ++it) {
      const step_definition* step = definition_.find(*it);
      if (step != nullptr && step->has_compensation)
        out.commands.push_back(saga_command::compensate(*it));
      else
        out.commands.push_back(saga_command::compensate_by_operator(*it));
    }
    out.commands.push_back(saga_command::publish_failed());
    return out;
  }

  const saga_definition& definition_;
  const saga_state& state_;
  event_kind kind_;
};

std::string event_step(const saga_event& event) {
  if (const auto* e = std::get_if<events::step_succeeded>(&event))
    return e->step;
  if (const auto* e = std::get_if<events::step_rejected>(&event))
    return e->step;
  if (const auto* e = std::get_if<events::step_gave_up>(&event))
    return e->step;
  return {};
}

}  // namespace

saga_state start(const saga_definition& definition) {
  saga_state state;
  state.steps = definition.step_names();
  return state;
}

bool is_ended(const saga_state& state) {
  return state.status == confirmed_status || state.status == cancelled_status ||
         state.status == failed_status;
}

bool is_consistent(const saga_state& state) {
  if (state.steps.empty() || state.status.empty())
    return false;
  for (std::size_t i = 0; i < state.steps.size(); ++i) {
    if (!is_step_name(state.steps[i]) || index_of(state.steps, state.steps[i]) != i)
      return false;
  }
  const bool cancelled = state.status == cancelled_status;
  if (cancelled != !state.reason.empty() || (cancelled && !is_reason(state.reason)))
    return false;
  const bool confirmed = state.status == confirmed_status;
  if (is_ended(state) && !confirmed) {
    if (!state.owed.empty() || state.position > state.steps.size())
      return false;
  } else if (confirmed ? state.position != state.steps.size()
                       : state.position >= state.steps.size()) {
    return false;
  }
  // Owed steps completed before the position, each once, in the order of the list.
  std::optional<std::size_t> previous;
  for (const std::string& name : state.owed) {
    auto at = index_of(state.steps, name);
    if (!at || *at >= state.position || (previous && *at <= *previous))
      return false;
    previous = at;
  }
  return true;
}

bool is_part_of(const saga_state& state, std::string_view step) {
  return index_of(state.steps, step).has_value();
}

std::optional<std::string> awaited_step(const saga_definition& definition,
                                        const saga_state& state) {
  if (is_ended(state) || state.position >= state.steps.size())
    return std::nullopt;
  // With no declared step left, the undeclared one is named so its deadline still ends the saga.
  auto at = next_declared(definition, state, state.position);
  return state.steps[at.value_or(state.position)];
}

event_kind kind_of(const saga_event& event) {
  return static_cast<event_kind>(event.index());
}

std::string_view to_string(event_kind kind) {
  switch (kind) {
    case event_kind::step_succeeded:
      return "step_succeeded";
    case event_kind::step_rejected:
      return "step_rejected";
    case event_kind::step_gave_up:
      return "step_gave_up";
    case event_kind::deadline_expired:
      return "deadline_expired";
    case event_kind::processing_failed:
      return "processing_failed";
    case event_kind::cancel_requested:
      return "cancel_requested";
  }
  return "unknown";
}

std::string to_string(const saga_command& command) {
  std::string_view name = "unknown";
  switch (command.kind) {
    case command_kind::compensate:
      name = "compensate";
      break;
    case command_kind::compensate_by_operator:
      name = "compensate_by_operator";
      break;
    case command_kind::finalize:
      name = "finalize";
      break;
    case command_kind::publish_succeeded:
      name = "publish_succeeded";
      break;
    case command_kind::publish_failed:
      return "publish_failed";
  }
  return std::string(name) + "(" + command.step + ")";
}

std::string describe(const saga_rejection& rejection) {
  std::string event(to_string(rejection.event));
  if (!rejection.step.empty())
    event += "(" + rejection.step + ")";
  switch (rejection.error) {
    case saga_error::event_does_not_fit: {
      std::string out = "event " + event + " does not fit order status " + rejection.status;
      if (rejection.status == confirmed_status || rejection.status == cancelled_status ||
          rejection.status == failed_status)
        out += " (the saga has ended)";
      return out;
    }
    case saga_error::step_not_in_saga:
      return "event " + event + ": step " + rejection.step +
             " is not in this saga's step list (the saga started without it)";
    case saga_error::step_not_declared:
      return "event " + event + ": step " + rejection.step +
             " is not declared by the running saga definition";
    case saga_error::malformed_event:
      return "event " + event + " has no well-formed reason ([A-Z][A-Z0-9_]*)";
    case saga_error::inconsistent_state:
      return "saga state in order status " + rejection.status +
             " breaks its invariants (steps, position, reason or owed compensations); refusing "
             "event " +
             event;
  }
  return "saga rejected the event";
}

saga_result apply(const saga_definition& definition, const saga_state& state,
                  const saga_event& event) {
  event_kind kind = kind_of(event);
  if (!is_consistent(state))
    return saga_rejection{saga_error::inconsistent_state, state.status, kind, event_step(event)};
  return std::visit(transition_rules(definition, state, kind), event);
}

}  // namespace op::saga
