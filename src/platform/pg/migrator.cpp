#include "platform/pg/migrator.hpp"

#include <set>

namespace op::pg {
namespace {
constexpr long long migration_lock_id = 0x6f7264657273;  // "orders"
}

std::vector<std::string> migrate(pqxx::connection& connection,
                                 const std::vector<migration>& migrations) {
  {
    pqxx::nontransaction lock(connection);
    lock.exec("SELECT pg_advisory_lock(" + std::to_string(migration_lock_id) + ")");
  }
  std::vector<std::string> applied;
  try {
    std::set<std::string> done;
    {
      pqxx::work tx(connection);
      tx.exec(
          "CREATE TABLE IF NOT EXISTS schema_migrations ("
          " version text PRIMARY KEY,"
          " applied_at timestamptz NOT NULL DEFAULT now())");
      for (const auto& row : tx.exec("SELECT version FROM schema_migrations"))
        done.insert(row[0].as<std::string>());
      tx.commit();
    }
    for (const auto& m : migrations) {
      std::string version(m.version);
      if (done.count(version))
        continue;
      pqxx::work tx(connection);
      tx.exec(std::string(m.sql));
      tx.exec_params("INSERT INTO schema_migrations (version) VALUES ($1)", version);
      tx.commit();
      applied.push_back(version);
    }
  } catch (...) {
    pqxx::nontransaction unlock(connection);
    unlock.exec("SELECT pg_advisory_unlock(" + std::to_string(migration_lock_id) + ")");
    throw;
  }
  pqxx::nontransaction unlock(connection);
  unlock.exec("SELECT pg_advisory_unlock(" + std::to_string(migration_lock_id) + ")");
  return applied;
}

}  // namespace op::pg
