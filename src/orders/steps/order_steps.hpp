#pragma once
// The orders area's steps of the saga: validate (the customer exists and is active, every
// product exists, is active and has the price the order states, and the total is the sum of
// the items) and confirm (the last step: the saga then sells the reserved units).

#include <pqxx/pqxx>
#include <string_view>

#include "order_pipeline/step.hpp"

namespace op::orders {

inline constexpr std::string_view validation_failed_reason = "VALIDATION_FAILED";

// The steps as the saga declares them (topic, deadline and retries come from the
// configuration).
order_pipeline::step validation_step();
order_pipeline::step confirmation_step();

void prepare_order_step_statements(pqxx::connection& c);

}  // namespace op::orders
