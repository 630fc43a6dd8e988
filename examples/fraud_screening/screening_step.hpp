#pragma once
// The fraud screen: a saga step between reserve and pay. It cancels a customer's first order
// above a set total, and any order of a customer on the risk list, before money is taken.

#include <order_pipeline/step.hpp>

#include "fraud_settings.hpp"

namespace fraud_screening {

inline constexpr const char* fraud_suspected_reason = "FRAUD_SUSPECTED";
// When the screen's retries run out (the risk list stayed in reload): the order is cancelled
// rather than paid unscreened.
inline constexpr const char* screen_unavailable_reason = "FRAUD_SCREEN_UNAVAILABLE";

order_pipeline::step screening_step(const fraud_settings& settings);

}  // namespace fraud_screening
