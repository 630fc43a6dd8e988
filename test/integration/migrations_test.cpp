#include <catch2/catch.hpp>

#include "platform/pg/migrator.hpp"
#include "support/test_environment.hpp"

using namespace op;

TEST_CASE("migrations apply once and a second run changes nothing", "[db]") {
  pqxx::connection conn(test::db_url());
  // A schema of its own, so this test starts from nothing whatever ran before.
  auto schema = "migrations_" + std::to_string(::getpid());
  {
    pqxx::work tx(conn);
    tx.exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE");
    tx.exec("CREATE SCHEMA " + schema);
    tx.commit();
  }
  {
    pqxx::nontransaction tx(conn);
    tx.exec("SET search_path TO " + schema);
  }
  const auto& all = pg::embedded_migrations();
  REQUIRE_FALSE(all.empty());

  auto first = pg::migrate(conn, all);
  CHECK(first.size() == all.size());

  auto count_objects = [&] {
    pqxx::work tx(conn);
    auto row = tx.exec1("SELECT count(*) FROM pg_tables WHERE schemaname = " + tx.quote(schema));
    return row[0].as<int>();
  };
  auto tables_after_first = count_objects();
  CHECK(tables_after_first > 5);

  auto second = pg::migrate(conn, all);
  CHECK(second.empty());
  CHECK(count_objects() == tables_after_first);
  {
    pqxx::work tx(conn);
    CHECK(tx.exec1("SELECT count(*) FROM schema_migrations")[0].as<std::size_t>() == all.size());
  }
  pqxx::work tx(conn);
  tx.exec("DROP SCHEMA " + schema + " CASCADE");
  tx.commit();
}
