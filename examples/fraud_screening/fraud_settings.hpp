#pragma once
// The fraud screen's settings, read once at start from the environment (README.md names the
// variables). The pipeline's own settings stay in its configuration file.

#include <cstdint>
#include <order_pipeline/step.hpp>
#include <string>

namespace fraud_screening {

struct fraud_settings {
  // A customer's first order above this total (in cents) is cancelled FRAUD_SUSPECTED.
  std::int64_t max_first_order_cents = 50000;
  // While the risk list is being reloaded: 200 ms, 400 ms, ... 3.2 s, then the order is given up.
  order_pipeline::retry_policy screen_retry{5, std::chrono::milliseconds(200), 2.0, 0.2};
  // The pipeline's database, where the example keeps its tables too.
  std::string database_url;

  // std::invalid_argument naming the variable when one is malformed or DB_URL is missing.
  static fraud_settings from_environment();
};

}  // namespace fraud_screening
