// A step that calls out (pay: the payment gateway) first asks PostgreSQL whether each
// message's order waits for it, for the messages that arrive together in one statement
// (step_engine::find_awaiting). It must call out for exactly the orders that wait, whatever
// else shares that statement: an order past the step, an order whose pending retry is what
// runs the step, an order that does not exist; and the retry itself, when it runs, calls out.

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <future>
#include <mutex>
#include <set>

#include "platform/runtime/asio.hpp"
#include "step_engine_fixture.hpp"

using namespace op;
using namespace std::chrono_literals;

namespace {

std::string envelope_of(const std::string& order_id, int n) {
  return fmt::format(
      R"({{"eventId":"00000000-0000-4000-8000-{:012d}","eventType":"InventoryReserved",)"
      R"("orderId":"{}","occurredAt":"2026-12-02T00:00:00.000Z","payload":{{}}}})",
      n, order_id);
}

}  // namespace

TEST_CASE("a step that calls out does so for the orders waiting for it, and only for them",
          "[stages][db]") {
  std::mutex called_mutex;
  std::multiset<std::string> called;
  auto pay_prepare = [&](const order_pipeline::order& order) -> asio::awaitable<std::any> {
    std::lock_guard lock(called_mutex);
    called.insert(order.id);
    co_return std::any(true);
  };
  test::step_engine_fixture engine("test.prepare.", {}, pay_prepare);
  auto& pool = engine.pool;
  auto& stages = engine.stages;

  const auto waiting = test::unique_name("ORD-prepare-waiting");
  const auto retried = test::unique_name("ORD-prepare-retried");
  const auto paid = test::unique_name("ORD-prepare-paid");
  const auto missing = test::unique_name("ORD-prepare-missing");
  // Its events go to topics that do not exist: left in the outbox, they would hold up the relay
  // of every server test after it. Removed when the test ends, also when it fails.
  struct remove_rows {
    pg::connection_pool& pool;
    std::vector<std::string> order_ids;
    ~remove_rows() {
      pool.with_connection([&](pqxx::connection& c) {
        pqxx::work tx(c);
        tx.exec("DELETE FROM outbox WHERE topic LIKE 'test.prepare.%'");
        for (const auto& id : order_ids) {
          tx.exec_params("DELETE FROM stage_retries WHERE order_id = $1", id);
          tx.exec_params("DELETE FROM running_sagas WHERE order_id = $1", id);
          tx.exec_params("DELETE FROM orders WHERE order_id = $1", id);
        }
        tx.commit();
      });
    }
  } removed_at_end{pool, {waiting, retried, paid}};
  pool.with_connection([&](pqxx::connection& c) {
    pqxx::work tx(c);
    const int list = tx.exec(
                           "SELECT id FROM saga_step_lists"
                           " WHERE steps = '{validate,reserve,pay,confirm}'")[0][0]
                         .as<int>();
    auto write_order = [&](const std::string& id, const std::string& status, int step_index) {
      tx.exec_params(
          "INSERT INTO orders (order_id, customer_id, payment_method, total_cents, status,"
          " created_at, updated_at, step_list, step_index, step_started_at)"
          " VALUES ($1, 'cust-prepare', 'pm_card_visa', 600, $2, now(), now(), $3, $4, now())",
          id, status, list, step_index);
      tx.exec_params("INSERT INTO running_sagas (order_id, created_at) VALUES ($1, now())", id);
    };
    write_order(waiting, "INVENTORY_RESERVED", 2);
    write_order(retried, "INVENTORY_RESERVED", 2);
    write_order(paid, "PAYMENT_PROCESSED", 3);
    // A pay retry of `retried`, due: it, not a message, runs the step.
    tx.exec_params(
        "INSERT INTO stage_retries (stage, order_id, topic, partition, \"offset\", message_key,"
        " payload, attempts, error_class, last_error, due_at) VALUES ('pay', $1,"
        " 'test.prepare.reserve', 0, 0, $1, convert_to($2, 'UTF8'), 1, 'transient',"
        " 'gateway timed out', now() - interval '1 second')",
        retried, envelope_of(retried, 99));
    tx.commit();
  });
  auto step_index_of = [&](const std::string& order_id) {
    return pool.with_connection([&](pqxx::connection& c) {
      pqxx::work tx(c);
      return tx.exec_params1("SELECT step_index FROM orders WHERE order_id = $1", order_id)[0]
          .as<int>();
    });
  };

  // The four messages at once, read in one statement: the engine's only database thread is
  // held until all four wait for it.
  std::vector<kafka::consumed_message> messages;
  int n = 0;
  for (const auto& id : {waiting, retried, paid, missing})
    messages.push_back({"test.prepare.reserve", 0, n, id, envelope_of(id, n), {}}), ++n;
  std::promise<void> all_waiting;
  asio::post(engine.blocking, [held = all_waiting.get_future()]() mutable { held.wait(); });
  asio::io_context io;
  for (const auto& message : messages)
    asio::co_spawn(io, stages.handle("pay", message), asio::detached);
  io.poll();  // each runs until it waits for its read
  all_waiting.set_value();
  io.restart();
  io.run();

  CHECK(called == std::multiset<std::string>{waiting});
  CHECK(step_index_of(waiting) == 3);
  CHECK(step_index_of(retried) == 2);
  CHECK(step_index_of(paid) == 3);

  // The retry runs the step, calling out first.
  std::optional<saga::stage_retry> ours;
  for (auto& retry : stages.claim_due_retries(64, {"pay"}))
    if (retry.message.key == retried)
      ours = retry;
  REQUIRE(ours);
  asio::io_context io_again;
  asio::co_spawn(io_again, stages.run_retry(*ours, {"pay"}), asio::detached);
  io_again.run();

  CHECK(called == std::multiset<std::string>{waiting, retried});
  CHECK(step_index_of(retried) == 3);
  pool.with_connection([&](pqxx::connection& c) {
    pqxx::work tx(c);
    CHECK(tx.exec_params1("SELECT count(*) FROM stage_retries WHERE order_id = $1", retried)[0]
              .as<int>() == 0);
  });
}
