// The sweeper sends again the event that starts the step a stalled order waits for
// (step_engine::republish_stalled), a bounded number of orders per pass. An order it looked at
// and could not send on (a step this program does not declare) must not take that place in
// the next pass: the orders behind it would never be sent on.

#include <catch2/catch.hpp>

#include "step_engine_fixture.hpp"

using namespace op;
using namespace std::chrono_literals;

TEST_CASE("orders the sweeper cannot send on do not hold back the stalled orders behind them",
          "[stages][db][republish]") {
  saga::engine_settings settings;
  // Topics no consumer reads: what this engine sends again reaches no stage.
  settings.order_placed_topic = "test.republish.placed";
  settings.republish_after = 1s;
  test::step_engine_fixture engine("test.republish.", settings);
  auto& pool = engine.pool;

  // Stalled since long before any other order, so they are the first two in line: one waits
  // for a step this program does not declare (a release that had it left it), one for
  // validate.
  const auto undeclared = test::unique_name("ORD-stalled-screen");
  const auto placed = test::unique_name("ORD-stalled-placed");
  pool.with_connection([&](pqxx::connection& c) {
    pqxx::work tx(c);
    tx.exec(
        "INSERT INTO saga_step_lists (steps, topics) VALUES ('{validate,screen}',"
        " '{orders.validated,test.screened}') ON CONFLICT (steps) DO NOTHING");
    auto list_of = [&](const char* steps) {
      return tx.exec_params1("SELECT id FROM saga_step_lists WHERE steps = $1::text[]", steps)[0]
          .as<int>();
    };
    auto write_order = [&](const std::string& id, const std::string& status, int list,
                           int step_index, const std::string& since) {
      tx.exec_params(
          "INSERT INTO orders (order_id, customer_id, payment_method, total_cents, status,"
          " created_at, updated_at, step_list, step_index, step_started_at)"
          " VALUES ($1, 'cust-stalled', 'pm_card_visa', 600, $2, $5::timestamptz,"
          " $5::timestamptz, $3, $4, $5::timestamptz)",
          id, status, list, step_index, since);
      tx.exec_params("INSERT INTO running_sagas (order_id, created_at) VALUES ($1, $2)", id, since);
    };
    write_order(undeclared, "VALIDATED", list_of("{validate,screen}"), 1, "2000-01-01 00:00Z");
    write_order(placed, "PLACED", list_of("{validate,reserve,pay,confirm}"), 0,
                "2000-01-01 00:01Z");
    tx.commit();
  });

  auto sent_again = [&](const std::string& order_id) {
    return pool.with_connection([&](pqxx::connection& c) {
      pqxx::work tx(c);
      return tx
          .exec_params1(
              "SELECT count(*) FROM outbox WHERE message_key = $1"
              " AND topic LIKE 'test.republish.%'",
              order_id)[0]
          .as<int>();
    });
  };
  // One order per pass. A pass that finds another replica's sweeper at work looks at
  // nothing; a few passes are allowed for that.
  for (int pass = 0; pass < 10 && sent_again(placed) == 0; ++pass)
    engine.stages.republish_stalled(1);
  CHECK(sent_again(placed) == 1);
  CHECK(sent_again(undeclared) == 0);

  pool.with_connection([&](pqxx::connection& c) {
    pqxx::work tx(c);
    tx.exec("DELETE FROM outbox WHERE topic LIKE 'test.republish.%'");
    tx.exec_params("DELETE FROM orders WHERE order_id IN ($1, $2)", undeclared, placed);
    tx.exec_params("DELETE FROM running_sagas WHERE order_id IN ($1, $2)", undeclared, placed);
    tx.commit();
  });
}
