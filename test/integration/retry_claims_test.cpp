// The retry scheduler of a replica claims only the durable retries of the stages it runs
// (app.stages.enabled): a pay retry is never run by a replica without the payment gateway,
// and waits in PostgreSQL until a replica that runs pay claims it. A retry of a step the
// program does not declare at all (left by a release that did) is claimed by any replica
// that runs stages, which hands it to the step its saga waits for now.

#include <catch2/catch.hpp>

#include "orders/adapters/dead_letters.hpp"
#include "platform/pg/migrator.hpp"
#include "saga/engine/step_engine.hpp"
#include "support/test_environment.hpp"

using namespace op;
using namespace std::chrono_literals;

TEST_CASE("a replica claims only the retries of the stages it runs", "[stages][db]") {
  {
    pqxx::connection conn(test::db_url());
    pg::migrate(conn, pg::embedded_migrations());
  }
  pg::connection_pool pool(test::db_url(), 2, 3s);
  pool.add_setup(saga::step_engine::prepare_statements);
  asio::thread_pool blocking(1);
  orders::dead_letter_queue dead_letters("dlq.orders");
  saga::step_engine stages(pool, blocking, dead_letters, {});
  for (const char* name : {"validate", "reserve", "pay", "confirm"}) {
    order_pipeline::step step;
    step.name = name;
    step.topic = std::string("test.") + name;
    step.event_type = name;
    step.timeout_reason = "TIMEOUT";
    step.retry = order_pipeline::retry_policy{};
    step.deadline = 60s;
    step.action = [](order_pipeline::step_context&) { return order_pipeline::decision::proceed(); };
    stages.declare(std::move(step));
  }
  stages.seal();

  // Retries due long ago, so they come first among any others due: one of pay, one of a
  // step this program does not declare.
  const auto order_id = test::unique_name("ORD-retry");
  auto insert_retry = [&](const std::string& stage, const std::string& due) {
    pool.with_connection([&](pqxx::connection& c) {
      pqxx::work tx(c);
      tx.exec_params(
          "INSERT INTO stage_retries (stage, order_id, topic, partition, \"offset\", message_key,"
          " payload, attempts, error_class, last_error, due_at) VALUES ($2, $1,"
          " 'inventory.reserved', 0, 0, $1, '\\x7b7d', 1, 'transient', 'gateway timed out', $3)",
          order_id, stage, due);
      tx.commit();
    });
  };
  insert_retry("pay", "2000-01-01");
  auto claimed_ours = [&](const std::vector<std::string>& replica_stages, int limit) {
    std::vector<std::string> out;
    for (const auto& retry : stages.claim_due_retries(limit, replica_stages))
      if (retry.message.key == order_id)
        out.push_back(retry.stage);
    return out;
  };

  CHECK(claimed_ours({"validate", "reserve"}, 64).empty());
  CHECK(claimed_ours({}, 64).empty());
  CHECK(claimed_ours({"pay", "confirm"}, 1) == std::vector<std::string>{"pay"});

  insert_retry("screen", "2000-01-01");
  CHECK(claimed_ours({}, 64).empty());
  CHECK(claimed_ours({"validate", "reserve"}, 1) == std::vector<std::string>{"screen"});

  pool.with_connection([&](pqxx::connection& c) {
    pqxx::work tx(c);
    tx.exec_params("DELETE FROM stage_retries WHERE order_id = $1", order_id);
    tx.commit();
  });
  blocking.join();
}
