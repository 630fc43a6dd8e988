#pragma once
// Sorts database failures into "PostgreSQL is unavailable or overloaded, try again" and
// everything else (bugs, constraint violations), so callers can answer 503 or retry.

#include <exception>

namespace op::pg {

// Connection lost or refused, pool exhausted, server shutting down, too many connections,
// serialization failure or deadlock.
bool is_transient(const std::exception& e);

// The transient failures that mean "PostgreSQL is not there" (everything above except
// serialization failures and deadlocks): waiting is all one can do; counting attempts would
// dead-letter every message of an outage.
bool is_unavailable(const std::exception& e);

}  // namespace op::pg
