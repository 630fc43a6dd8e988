#include "platform/pg/pg_errors.hpp"

#include <pqxx/pqxx>

#include "platform/pg/connection_pool.hpp"

namespace op::pg {

bool is_unavailable(const std::exception& e) {
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    const std::string state = sql->sqlstate();
    if (state == "40001" || state == "40P01")
      return false;
  }
  return is_transient(e);
}

bool is_transient(const std::exception& e) {
  if (dynamic_cast<const pqxx::broken_connection*>(&e))
    return true;
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e))
    return true;
  if (dynamic_cast<const pool_exhausted*>(&e))
    return true;
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    const std::string state = sql->sqlstate();
    // 08: connection exception, 57P: operator intervention (shutdown), 53: insufficient
    // resources, 40001/40P01: serialization failure / deadlock.
    return state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0 || state.rfind("53", 0) == 0 ||
           state == "40001" || state == "40P01";
  }
  return false;
}

}  // namespace op::pg
