#pragma once
// The orders area's steps of the saga: validate (the customer exists and is active, every
// product exists, is active and has the price the order states, and the total is the sum of
// the items) and confirm (the last step: the saga then sells the reserved units).

#include <pqxx/pqxx>

#include "saga/engine/step_engine.hpp"

namespace op::orders {

saga::step_effect validation();
saga::step_effect confirmation();

void prepare_order_step_statements(pqxx::connection& c);

}  // namespace op::orders
