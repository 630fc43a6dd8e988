// The retry scheduler of a replica claims only the durable retries of the stages it runs
// (app.stages.enabled): a pay retry is never run by a replica without the payment gateway,
// and waits in PostgreSQL until a replica that runs pay claims it. A retry of a step the
// program does not declare at all (left by a release that did) is claimed by any replica
// that runs stages, which hands it to the step its saga waits for now.

#include <catch2/catch.hpp>

#include "step_engine_fixture.hpp"

using namespace op;
using namespace std::chrono_literals;

TEST_CASE("a replica claims only the retries of the stages it runs", "[stages][db]") {
  test::step_engine_fixture engine("test.");
  auto& pool = engine.pool;
  auto& stages = engine.stages;

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
}
