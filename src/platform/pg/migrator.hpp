#pragma once
// Applies the SQL migrations of sql/ (compiled into the binary) in version order, each in
// its own transaction, recording them in schema_migrations so a restart applies nothing
// twice. An advisory lock lets several replicas start at once.

#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <vector>

namespace op::pg {

struct migration {
  std::string_view version;  // the file name, e.g. "001_orders.sql"
  std::string_view sql;
};

// The migrations embedded from sql/ at build time, sorted by version.
const std::vector<migration>& embedded_migrations();

// Returns the versions it applied (empty when the schema was up to date).
std::vector<std::string> migrate(pqxx::connection& connection,
                                 const std::vector<migration>& migrations);

}  // namespace op::pg
