#pragma once
// A step engine against the test database, without a server: the four steps of the default
// program, each proceeding at once, on topics of their own (`topic_prefix` + step name) that
// no stage reads; pay calls out first with `pay_prepare` when one is given.

#include <any>
#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <string>

#include "orders/adapters/dead_letters.hpp"
#include "platform/outbox/outbox.hpp"
#include "platform/pg/migrator.hpp"
#include "saga/engine/step_engine.hpp"
#include "support/test_environment.hpp"

namespace op::test {

inline pg::connection_pool& migrated(pg::connection_pool& pool) {
  pqxx::connection conn(db_url());
  pg::migrate(conn, pg::embedded_migrations());
  pool.add_setup(saga::step_engine::prepare_statements);
  pool.add_setup(outbox::prepare_statements);
  return pool;
}

struct step_engine_fixture {
  explicit step_engine_fixture(
      const std::string& topic_prefix, saga::engine_settings settings = {},
      std::function<boost::asio::awaitable<std::any>(const order_pipeline::order&)> pay_prepare =
          {})
      : stages(migrated(pool), blocking, dead_letters, std::move(settings)) {
    using namespace std::chrono_literals;
    for (const char* name : {"validate", "reserve", "pay", "confirm"}) {
      order_pipeline::step step;
      step.name = name;
      step.topic = topic_prefix + name;
      step.event_type = name;
      step.timeout_reason = "TIMEOUT";
      step.retry = order_pipeline::retry_policy{};
      step.deadline = 60s;
      step.action = [](order_pipeline::step_context&) {
        return order_pipeline::decision::proceed();
      };
      if (step.name == "pay")
        step.prepare = pay_prepare;
      stages.declare(std::move(step));
    }
    stages.seal();
  }
  ~step_engine_fixture() { blocking.join(); }

  pg::connection_pool pool{db_url(), 2, std::chrono::seconds(3)};
  boost::asio::thread_pool blocking{1};
  orders::dead_letter_queue dead_letters{"dlq.orders"};
  saga::step_engine stages;
};

}  // namespace op::test
