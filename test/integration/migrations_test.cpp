#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "platform/pg/migrator.hpp"
#include "support/test_environment.hpp"

using namespace op;

namespace {

// A schema of its own for the connection, so a test starts from nothing whatever ran before;
// dropped when the test ends, also when it fails.
class empty_schema {
 public:
  empty_schema(pqxx::connection& conn, const std::string& prefix)
      : conn_(conn), name_(prefix + std::to_string(::getpid())) {
    {
      pqxx::work tx(conn_);
      tx.exec("DROP SCHEMA IF EXISTS " + name_ + " CASCADE");
      tx.exec("CREATE SCHEMA " + name_);
      tx.commit();
    }
    pqxx::nontransaction tx(conn_);
    tx.exec("SET search_path TO " + name_);
  }
  ~empty_schema() {
    try {
      pqxx::nontransaction tx(conn_);
      tx.exec("DROP SCHEMA IF EXISTS " + name_ + " CASCADE");
    } catch (const std::exception&) {
      // The next run drops it before it starts.
    }
  }
  empty_schema(const empty_schema&) = delete;
  empty_schema& operator=(const empty_schema&) = delete;
  const std::string& name() const { return name_; }

 private:
  pqxx::connection& conn_;
  std::string name_;
};

// Applies the embedded migrations older than `version`, as a database of the release before
// it has them; answers how many are left to apply.
std::size_t migrate_before(pqxx::connection& conn, const std::string& version) {
  const auto& all = pg::embedded_migrations();
  std::vector<pg::migration> before;
  for (const auto& m : all) {
    if (m.version < version)
      before.push_back(m);
  }
  REQUIRE(before.size() < all.size());
  pg::migrate(conn, before);
  return all.size() - before.size();
}

// Applies the rest and checks that exactly `left` were.
void migrate_the_rest(pqxx::connection& conn, std::size_t left) {
  CHECK(pg::migrate(conn, pg::embedded_migrations()).size() == left);
}

}  // namespace

TEST_CASE("migrations apply once and a second run changes nothing", "[db]") {
  pqxx::connection conn(test::db_url());
  const empty_schema schema(conn, "migrations_");
  const auto& all = pg::embedded_migrations();
  REQUIRE_FALSE(all.empty());

  auto first = pg::migrate(conn, all);
  CHECK(first.size() == all.size());

  auto count_objects = [&] {
    pqxx::work tx(conn);
    auto row =
        tx.exec1("SELECT count(*) FROM pg_tables WHERE schemaname = " + tx.quote(schema.name()));
    return row[0].as<int>();
  };
  auto tables_after_first = count_objects();
  CHECK(tables_after_first > 5);

  auto second = pg::migrate(conn, all);
  CHECK(second.empty());
  CHECK(count_objects() == tables_after_first);
  pqxx::work tx(conn);
  CHECK(tx.exec1("SELECT count(*) FROM schema_migrations")[0].as<std::size_t>() == all.size());
}

TEST_CASE("the history migration keeps every order's entries, newest first", "[db]") {
  pqxx::connection conn(test::db_url());
  const empty_schema schema(conn, "migrations_history_");
  const auto left = migrate_before(conn, "010");
  {
    pqxx::work tx(conn);
    tx.exec(
        "INSERT INTO orders (order_id, customer_id, payment_method, total_cents, status) "
        "VALUES ('o-1', 'c-1', 'CARD', 100, 'CANCELLED'), ('o-2', 'c-1', 'CARD', 100, 'PLACED')");
    tx.exec(
        "INSERT INTO order_events (order_id, seq, status, reason, detail, at) VALUES "
        "('o-1', 1, 'PLACED', NULL, NULL, '2026-01-01T00:00:00Z'), "
        "('o-1', 3, 'CANCELLED', 'PAYMENT_DECLINED', 'card declined', '2026-01-01T00:00:02Z'), "
        "('o-1', 2, 'VALIDATED', NULL, NULL, '2026-01-01T00:00:01Z'), "
        "('o-2', 1, 'PLACED', NULL, NULL, '2026-01-01T00:00:03Z')");
    tx.commit();
  }

  migrate_the_rest(conn, left);

  pqxx::work tx(conn);
  auto statuses = [&](const std::string& order_id) {
    std::string joined;
    for (const auto& row : tx.exec_params(
             "SELECT e.status FROM orders o, unnest(o.history) WITH ORDINALITY AS e(status, "
             "reason, detail, at, n) WHERE o.order_id = $1 ORDER BY e.n",
             order_id)) {
      joined += (joined.empty() ? "" : ",") + row[0].as<std::string>();
    }
    return joined;
  };
  CHECK(statuses("o-1") == "CANCELLED,VALIDATED,PLACED");
  CHECK(statuses("o-2") == "PLACED");
  auto newest = tx.exec1(
      "SELECT (history[1]).reason, (history[1]).detail FROM orders "
      "WHERE order_id = 'o-1'");
  CHECK(newest[0].as<std::string>() == "PAYMENT_DECLINED");
  CHECK(newest[1].as<std::string>() == "card declined");
  CHECK(tx.exec1("SELECT to_regclass('order_events') IS NULL")[0].as<bool>());
}

TEST_CASE("the running sagas migration lists the orders whose saga has not ended", "[db]") {
  pqxx::connection conn(test::db_url());
  const empty_schema schema(conn, "migrations_running_");
  const auto left = migrate_before(conn, "011");
  {
    pqxx::work tx(conn);
    tx.exec(
        "INSERT INTO orders (order_id, customer_id, payment_method, total_cents, status,"
        " created_at, finished_at) VALUES"
        " ('o-ended', 'c-1', 'CARD', 100, 'CONFIRMED', '2026-01-01T00:00:00Z',"
        " '2026-01-01T00:00:01Z'),"
        " ('o-running', 'c-1', 'CARD', 100, 'INVENTORY_RESERVED', '2026-01-01T00:00:02Z',"
        " NULL)");
    tx.commit();
  }

  migrate_the_rest(conn, left);

  pqxx::work tx(conn);
  auto running =
      tx.exec("SELECT order_id, created_at = '2026-01-01T00:00:02Z' FROM running_sagas ORDER BY 1");
  REQUIRE(running.size() == 1);
  CHECK(running[0][0].as<std::string>() == "o-running");
  CHECK(running[0][1].as<bool>());
  CHECK(tx.exec1("SELECT to_regclass('orders_running') IS NULL")[0].as<bool>());
}

TEST_CASE("the items migration keeps every order's lines, in their order", "[db]") {
  pqxx::connection conn(test::db_url());
  const empty_schema schema(conn, "migrations_items_");
  const auto left = migrate_before(conn, "012");
  {
    pqxx::work tx(conn);
    tx.exec(
        "INSERT INTO orders (order_id, customer_id, payment_method, total_cents, status) "
        "VALUES ('o-1', 'c-1', 'CARD', 1700, 'CONFIRMED'), ('o-2', 'c-1', 'CARD', 0, 'PLACED')");
    tx.exec(
        "INSERT INTO order_items (order_id, line_no, product_id, product_name, quantity,"
        " price_cents) VALUES ('o-1', 2, 'p-b', NULL, 1, 500), ('o-1', 1, 'p-a', 'Anvil', 2, 600)");
    tx.commit();
  }

  migrate_the_rest(conn, left);

  pqxx::work tx(conn);
  auto lines = [&](const std::string& order_id) {
    std::string joined;
    for (const auto& row : tx.exec_params(
             "SELECT i.product_id, coalesce(i.product_name, '-'), i.quantity, i.price_cents"
             " FROM orders o, unnest(o.items) WITH ORDINALITY AS i (product_id, product_name,"
             " quantity, price_cents, n) WHERE o.order_id = $1 ORDER BY i.n",
             order_id)) {
      joined += (joined.empty() ? "" : ";") + row[0].as<std::string>() + "," +
                row[1].as<std::string>() + "," + row[2].as<std::string>() + "," +
                row[3].as<std::string>();
    }
    return joined;
  };
  CHECK(lines("o-1") == "p-a,Anvil,2,600;p-b,-,1,500");
  CHECK(lines("o-2").empty());
  CHECK(tx.exec1("SELECT to_regclass('order_items') IS NULL")[0].as<bool>());
}

TEST_CASE("the column order migration keeps every order as it was, history last", "[db]") {
  pqxx::connection conn(test::db_url());
  const empty_schema schema(conn, "migrations_columns_");
  const auto left = migrate_before(conn, "013");
  auto orders_as_json = [&] {
    pqxx::work tx(conn);
    return tx.exec1("SELECT jsonb_agg(to_jsonb(o) ORDER BY order_id)::text FROM orders o")[0]
        .as<std::string>();
  };
  {
    pqxx::work tx(conn);
    tx.exec(
        "INSERT INTO orders (order_id, customer_id, customer_email, shipping_address,"
        " payment_method, total_cents, status, cancel_reason, cancel_detail, created_at,"
        " updated_at, trace_id, step_list, step_index, owed, step_started_at, finished_at,"
        " history, items) VALUES"
        " ('o-1', 'c-1', 'a@example.com', '1 Road', 'CARD', 1700, 'CANCELLED',"
        " 'PAYMENT_DECLINED', 'card declined', '2026-01-01T00:00:00Z', '2026-01-01T00:00:02Z',"
        " '4bf92f3577b34da6a3ce929d0e0e4736', 1, 2, '{}', '2026-01-01T00:00:01Z',"
        " '2026-01-01T00:00:02Z',"
        " ARRAY[ROW('CANCELLED', 'PAYMENT_DECLINED', 'card declined',"
        " '2026-01-01T00:00:02Z')::order_history_entry,"
        " ROW('PLACED', NULL, NULL, '2026-01-01T00:00:00Z')::order_history_entry],"
        " ARRAY[ROW('p-a', 'Anvil', 2, 600)::order_line, ROW('p-b', NULL, 1, 500)::order_line]),"
        " ('o-2', 'c-2', NULL, NULL, 'CARD', 0, 'PLACED', NULL, NULL, '2026-01-01T00:00:03Z',"
        " '2026-01-01T00:00:03Z', NULL, 1, 0, '{reserve}', '2026-01-01T00:00:03Z', NULL,"
        " '{}', '{}')");
    tx.commit();
  }
  const auto before = orders_as_json();

  migrate_the_rest(conn, left);

  CHECK(orders_as_json() == before);
  pqxx::work tx(conn);
  CHECK(tx.exec1("SELECT attname FROM pg_attribute WHERE attrelid = 'orders'::regclass"
                 " AND attnum > 0 AND NOT attisdropped ORDER BY attnum DESC LIMIT 1")[0]
            .as<std::string>() == "history");
  CHECK(tx.exec1("SELECT string_agg(attname, ',' ORDER BY attname) FROM pg_attribute"
                 " WHERE attrelid = 'orders'::regclass AND attnum > 0 AND attstattarget = 0")[0]
            .as<std::string>() == "history,items");
  CHECK(tx.exec1("SELECT count(*) FROM pg_indexes WHERE tablename = 'orders'"
                 " AND schemaname = current_schema()")[0]
            .as<int>() == 3);
}
