#include <unistd.h>

#include <catch2/catch.hpp>
#include <pqxx/pqxx>

#include "orders/adapters/data_retention.hpp"
#include "platform/pg/migrator.hpp"
#include "support/test_environment.hpp"

using namespace op;
using namespace std::chrono_literals;

TEST_CASE("the retention job deletes expired transient rows and nothing else", "[db][retention]") {
  // A schema of its own: the purge must see only this test's rows.
  const auto schema = "retention_" + std::to_string(::getpid());
  pqxx::connection admin(test::db_url());
  {
    pqxx::work tx(admin);
    tx.exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE");
    tx.exec("CREATE SCHEMA " + schema);
    tx.exec("SET LOCAL search_path TO " + schema);
    tx.commit();
  }
  {
    pqxx::nontransaction tx(admin);
    tx.exec("SET search_path TO " + schema);
  }
  pg::migrate(admin, pg::embedded_migrations());
  {
    pqxx::work tx(admin);
    tx.exec(R"(
      INSERT INTO processed_events (consumer, event_id, processed_at) VALUES
        ('validate', gen_random_uuid(), now() - interval '49 hours'),
        ('pay', gen_random_uuid(), now() - interval '72 hours'),
        ('pay', gen_random_uuid(), now() - interval '47 hours'),
        ('confirm', gen_random_uuid(), now());
      INSERT INTO idempotency_keys (idempotency_key, request_hash, order_id, response_body,
                                    created_at) VALUES
        ('old-key', 'h', 'o-1', '{}', now() - interval '25 hours'),
        ('fresh-key', 'h', 'o-2', '{}', now() - interval '23 hours');
      INSERT INTO dead_letters (stage, topic, partition, "offset", payload, error_class,
                                error_message, attempts, first_failure_at, last_failure_at,
                                status, replayed_at) VALUES
        ('pay', 'inventory.reserved', 0, 1, '\x00', 'permanent', 'e', 1, now(), now(),
         'REPLAYED', now() - interval '8 days'),
        ('pay', 'inventory.reserved', 0, 2, '\x00', 'permanent', 'e', 1, now(), now(),
         'REPLAYED', now() - interval '6 days'),
        ('pay', 'inventory.reserved', 0, 3, '\x00', 'permanent', 'e', 1,
         now() - interval '30 days', now() - interval '30 days', 'PARKED', NULL);
    )");
    tx.commit();
  }

  pg::connection_pool pool(test::db_url() + "?options=-csearch_path%3D" + schema, 2, 5s);
  orders::data_retention retention(pool, {1min, 48h, 24h, 168h, 100});
  CHECK(retention.purge_once() == 4);

  pqxx::work tx(admin);
  auto list = [&](const std::string& sql) {
    std::vector<std::string> out;
    for (const auto& r : tx.exec(sql))
      out.push_back(r[0].as<std::string>());
    return out;
  };
  // Claims within 48 h stay: a redelivered event must still find them.
  CHECK(list("SELECT consumer FROM processed_events ORDER BY consumer") ==
        std::vector<std::string>{"confirm", "pay"});
  // A key within its 24 h still answers a retrying client.
  CHECK(list("SELECT idempotency_key FROM idempotency_keys") ==
        std::vector<std::string>{"fresh-key"});
  // A parked letter waits for an operator however old; a replayed one goes after 7 days.
  CHECK(list(R"(SELECT "offset" FROM dead_letters ORDER BY "offset")") ==
        std::vector<std::string>{"2", "3"});
  // A second pass finds nothing more.
  CHECK(retention.purge_once() == 0);
  tx.exec("DROP SCHEMA " + schema + " CASCADE");
  tx.commit();
}
