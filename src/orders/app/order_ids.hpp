#pragma once
// Order ids unique across replicas without coordination: "ORD-" + a ULID (48-bit
// millisecond time + 80 random bits, Crockford base32), so ids also sort by creation time.

#include <string>

namespace op::orders {

std::string new_order_id();

}  // namespace op::orders
