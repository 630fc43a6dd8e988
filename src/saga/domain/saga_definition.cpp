#include "saga/domain/saga_definition.hpp"

#include <algorithm>
#include <utility>

namespace op::saga {

namespace {

bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool is_upper_alnum(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// [a-z][a-z0-9_-]*
bool is_step_name(std::string_view text) {
  if (text.empty() || text.front() < 'a' || text.front() > 'z')
    return false;
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return is_lower_alnum(c) || c == '_' || c == '-'; });
}

// [A-Z][A-Z0-9_]*: the shape of the status and reason strings the API shows.
bool is_upper_name(std::string_view text) {
  if (text.empty() || text.front() < 'A' || text.front() > 'Z')
    return false;
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return is_upper_alnum(c) || c == '_'; });
}

std::string_view rule_text(definition_rule rule) {
  switch (rule) {
    case definition_rule::no_steps:
      return "a saga needs at least one step";
    case definition_rule::bad_step_name:
      return "the name must match [a-z][a-z0-9_-]*";
    case definition_rule::duplicate_step_name:
      return "an earlier step has the same name";
    case definition_rule::bad_status:
      return "the status must be empty or match [A-Z][A-Z0-9_]*";
    case definition_rule::reserved_status:
      return "the status is reserved (PLACED, CANCELLED, FAILED; CONFIRMED only on the last step)";
    case definition_rule::bad_timeout_reason:
      return "the timeout reason is required and must match [A-Z][A-Z0-9_]*";
    case definition_rule::bad_failure_reason:
      return "the failure reason must be empty or match [A-Z][A-Z0-9_]*";
    case definition_rule::last_step_status:
      return "the last step's success shows CONFIRMED: its status must be empty or CONFIRMED";
    case definition_rule::late_landing_without_compensation:
      return "may land late but has no compensation";
    case definition_rule::finalizer_without_compensation:
      return "has a finalizer but no compensation";
  }
  return "breaks an unknown rule";
}

std::optional<definition_rule> broken_rule(const step_definition& step, bool is_last) {
  if (!is_step_name(step.name))
    return definition_rule::bad_step_name;
  if (!step.status.empty()) {
    if (!is_upper_name(step.status))
      return definition_rule::bad_status;
    if (step.status == placed_status || step.status == cancelled_status ||
        step.status == failed_status || (step.status == confirmed_status && !is_last))
      return definition_rule::reserved_status;
    if (is_last && step.status != confirmed_status)
      return definition_rule::last_step_status;
  }
  if (!is_upper_name(step.timeout_reason))
    return definition_rule::bad_timeout_reason;
  if (!step.failure_reason.empty() && !is_upper_name(step.failure_reason))
    return definition_rule::bad_failure_reason;
  if (step.may_land_late && !step.has_compensation)
    return definition_rule::late_landing_without_compensation;
  if (step.has_finalizer && !step.has_compensation)
    return definition_rule::finalizer_without_compensation;
  return std::nullopt;
}

}  // namespace

std::string describe(const definition_error& error) {
  if (error.rule == definition_rule::no_steps)
    return std::string(rule_text(error.rule));
  std::string out = "step " + std::to_string(error.step_index + 1) + " (" + error.step_name + "): ";
  out += rule_text(error.rule);
  return out;
}

definition_result saga_definition::make(std::vector<step_definition> steps) {
  if (steps.empty())
    return definition_error{definition_rule::no_steps, 0, {}};
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const step_definition& step = steps[i];
    if (auto rule = broken_rule(step, i + 1 == steps.size()))
      return definition_error{*rule, i, step.name};
    for (std::size_t j = 0; j < i; ++j) {
      if (steps[j].name == step.name)
        return definition_error{definition_rule::duplicate_step_name, i, step.name};
    }
  }
  return saga_definition(std::move(steps));
}

const step_definition* saga_definition::find(std::string_view name) const {
  for (const step_definition& step : steps_) {
    if (step.name == name)
      return &step;
  }
  return nullptr;
}

std::vector<std::string> saga_definition::step_names() const {
  std::vector<std::string> names;
  names.reserve(steps_.size());
  for (const step_definition& step : steps_)
    names.push_back(step.name);
  return names;
}

}  // namespace op::saga
