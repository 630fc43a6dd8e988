#pragma once
// An order as a program built on the pipeline sees it: in a step (as it was before the step)
// and in an outcome event.

#include <cstdint>
#include <string>
#include <vector>

namespace order_pipeline {

struct order_line {
  std::string product_id;
  std::string product_name;  // empty when the order did not name it
  std::int64_t quantity = 0;
  std::int64_t price_cents = 0;  // unit price, in minor units
};

struct order {
  std::string id;
  std::string customer_id;
  std::string customer_email;
  std::string shipping_address;
  std::string payment_method;
  std::string status;  // "INVENTORY_RESERVED", ... as in the orders API
  std::int64_t total_cents = 0;
  std::vector<order_line> items;
  std::string created_at;  // ISO-8601 UTC
};

}  // namespace order_pipeline
