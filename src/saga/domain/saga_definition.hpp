#pragma once
// A saga declared as an ordered list of steps: what each step shows once it succeeded, what undoes
// it, what finishes it when the whole saga completes, and why the order ends when it times out or
// keeps failing. Built and validated once at start (the composition root declares the built-in
// steps and a shop's own), then shared read-only: any thread may read it.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace op::saga {

// The statuses every saga shows, whatever its steps: the public API's names, never renamed.
inline constexpr std::string_view placed_status = "PLACED";
inline constexpr std::string_view confirmed_status = "CONFIRMED";
inline constexpr std::string_view cancelled_status = "CANCELLED";
inline constexpr std::string_view failed_status = "FAILED";

struct step_definition {
  // [a-z][a-z0-9_-]*, unique in a definition: the key of the step's events and commands.
  std::string name;
  // The order status once the step succeeded ("VALIDATED"); empty keeps the status as it was,
  // for a shop's step that should not add to the public status list. The last step's success
  // always shows CONFIRMED, so its status is empty or CONFIRMED.
  std::string status;
  // A compensation undoes the step's effect (release the reservation, refund the charge) when
  // the saga is cancelled or fails after the step succeeded.
  bool has_compensation = false;
  // The step's effect may land after the saga gave it up (a remote call such as the payment).
  // Giving it up (retries exhausted, deadline, cancel or dead letter while it is the awaited
  // step) then compensates it too, and a success that reaches a CANCELLED saga is compensated
  // at once. Needs a compensation.
  bool may_land_late = false;
  // Run when the whole saga completes (turn the reservation into a sale); a finalized step is no
  // longer compensated. Ends a held effect, so it needs a compensation.
  bool has_finalizer = false;
  // The cancel reason when the step's deadline passes ("PAYMENT_TIMEOUT"); required.
  std::string timeout_reason;
  // The cancel reason when the step's retries run out ("PAYMENT_FAILED"); empty ends the order
  // FAILED instead.
  std::string failure_reason;

  bool operator==(const step_definition&) const = default;
};

enum class definition_rule {
  no_steps,             // a saga needs at least one step
  bad_step_name,        // not [a-z][a-z0-9_-]*
  duplicate_step_name,  // two steps share a name
  bad_status,           // not [A-Z][A-Z0-9_]*
  reserved_status,      // PLACED, CANCELLED, FAILED, or CONFIRMED before the last step
  last_step_status,     // the last step shows CONFIRMED, so its status is empty or that
  bad_timeout_reason,   // missing or not [A-Z][A-Z0-9_]*
  bad_failure_reason,   // not [A-Z][A-Z0-9_]*
  late_landing_without_compensation,  // an effect that may land late must be undoable
  finalizer_without_compensation,     // a finalizer ends a held effect, which must be undoable
};

struct definition_error {
  definition_rule rule = definition_rule::no_steps;
  std::size_t step_index = 0;  // which step broke the rule (0 for no_steps)
  std::string step_name;

  bool operator==(const definition_error&) const = default;
};

// "step 3 (pay): may land late but has no compensation"
std::string describe(const definition_error& error);

class saga_definition;
using definition_result = std::variant<saga_definition, definition_error>;

class saga_definition {
 public:
  // Checks every rule above, first step first; the first broken rule is the error.
  static definition_result make(std::vector<step_definition> steps);

  const std::vector<step_definition>& steps() const { return steps_; }
  // nullptr when the definition does not declare the step.
  const step_definition* find(std::string_view name) const;
  // The step names, in order: the list a saga started now keeps for its whole life.
  std::vector<std::string> step_names() const;

 private:
  explicit saga_definition(std::vector<step_definition> steps) : steps_(std::move(steps)) {}

  std::vector<step_definition> steps_;
};

}  // namespace op::saga
