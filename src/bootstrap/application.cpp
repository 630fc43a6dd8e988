#include "bootstrap/application.hpp"

#include <fmt/format.h>

#include <atomic>
#include <condition_variable>
#include <thread>

#include "dashboard/dashboard_feed.hpp"
#include "dashboard/dashboard_routes.hpp"
#include "dashboard/pg_newest_orders.hpp"
#include "inventory/adapters/pg_product_repository.hpp"
#include "inventory/adapters/product_routes.hpp"
#include "inventory/steps/reservation_step.hpp"
#include "orders/adapters/data_retention.hpp"
#include "orders/adapters/dead_letters.hpp"
#include "orders/adapters/dlq_routes.hpp"
#include "orders/adapters/order_outcome_listener.hpp"
#include "orders/adapters/order_routes.hpp"
#include "orders/adapters/pg_order_repository.hpp"
#include "orders/steps/order_steps.hpp"
#include "payments/adapters/circuit_breaking_gateway.hpp"
#include "payments/adapters/http_payment_gateway.hpp"
#include "payments/steps/payment_step.hpp"
#include "payments/steps/refund_worker.hpp"
#include "platform/http/docs_routes.hpp"
#include "platform/http/health_routes.hpp"
#include "platform/http/metrics_routes.hpp"
#include "platform/http/router.hpp"
#include "platform/http/server.hpp"
#include "platform/kafka/kafka_admin.hpp"
#include "platform/kafka/partitioned_consumer.hpp"
#include "platform/kafka/producer.hpp"
#include "platform/log/logging.hpp"
#include "platform/metrics/process_metrics.hpp"
#include "platform/outbox/outbox_relay.hpp"
#include "platform/pg/connection_pool.hpp"
#include "platform/pg/migrator.hpp"
#include "platform/runtime/asio.hpp"
#include "platform/runtime/health_monitor.hpp"
#include "platform/runtime/waiter_registry.hpp"
#include "saga/engine/saga_jobs.hpp"
#include "saga/engine/step_engine.hpp"

namespace op::bootstrap {
namespace {

using namespace std::chrono_literals;

std::optional<std::string> probe_database(const std::string& conninfo,
                                          std::unique_ptr<pqxx::connection>& connection) {
  try {
    if (!connection || !connection->is_open())
      connection = std::make_unique<pqxx::connection>(conninfo);
    pqxx::nontransaction tx(*connection);
    tx.exec("SELECT 1");
    return std::nullopt;
  } catch (const std::exception& e) {
    connection.reset();
    std::string reason = e.what();
    while (!reason.empty() && (reason.back() == '\n' || reason.back() == ' '))
      reason.pop_back();
    return reason;
  }
}

saga::engine_settings saga_settings_of(const config::app_config& c) {
  saga::engine_settings s;
  s.topics = {c.kafka.order_validated.name, c.kafka.inventory_reserved.name,
              c.kafka.payment_processed.name, c.kafka.order_confirmed.name,
              c.kafka.order_failed.name};
  s.retry.max_retries = c.retry.max_attempts;
  s.retry.base_delay = c.retry.backoff_delay;
  s.deadlines = {c.saga.validation_deadline, c.saga.reservation_deadline, c.saga.payment_deadline,
                 c.saga.confirmation_deadline};
  return s;
}

resilience::circuit_breaker::settings breaker_settings(const config::circuit_breaker_config& c) {
  return {c.failure_rate_threshold, c.sliding_window_size, c.minimum_calls, c.open_duration,
          c.half_open_calls};
}

// What a replica runs when it runs only some stages (app.stages.enabled) or no public API
// (app.http.api-enabled), so that one stage can be scaled on its own:
// - the consumers of its stages only, and the durable retries of those stages only: a pay
//   retry waits in stage_retries for a replica that runs pay (it has the payment gateway);
// - the refunds only where pay runs: they call the payment gateway too; requests for them
//   wait in the payments table meanwhile;
// - on every replica: the outbox relay (the API writes orders.placed events, the stages the
//   next ones, the sweeper and DLQ replays theirs), the deadline sweeper and the queued DLQ
//   replays (PostgreSQL only; they must go on while a stage has no replica at all), the
//   migrations and the creation of every configured topic.
const char* const payment_stage = "pay";

}  // namespace

struct application::parts {
  explicit parts(const config::app_config& c)
      : pool(c.database.url, static_cast<std::size_t>(c.database.pool_size),
             c.database.connect_timeout),
        blocking(static_cast<std::size_t>(c.database.pool_size)),
        admin(c.kafka.bootstrap_servers),
        producer(c.kafka.bootstrap_servers, std::chrono::seconds(10)),
        relay({c.database.url, 500, std::chrono::milliseconds(5)}, producer),
        orders(pool, c.kafka.order_placed.name),
        customers(pool),
        products(pool),
        gateway(ioc, c.payment.gateway_url, c.payment.timeout, c.payment.max_retries, 64),
        breaking_gateway(gateway, breaker_settings(c.payment.circuit_breaker)),
        dead_letters(c.kafka.dlq_orders.name),
        stages(pool, stage_database, dead_letters, saga_settings_of(c)),
        payment(stages, pool, breaking_gateway),
        refunds(pool, breaking_gateway, {c.payment.timeout}),
        jobs(stages, dead_letters, pool, stage_workers,
             {std::chrono::milliseconds(200), c.saga.sweep_interval, c.dlq.replay_rate,
              c.stages.enabled}),
        retention(pool,
                  {c.retention.interval, c.retention.event_claims, c.retention.idempotency_keys,
                   c.retention.replayed_dead_letters, c.retention.batch_size}),
        waiters(c.http.max_waiting_requests),
        outcomes(c.kafka.bootstrap_servers,
                 {c.kafka.order_confirmed.name, c.kafka.order_failed.name}, waiters),
        monitor(c.runtime.health_interval),
        dashboard(
            {asio::ip::host_name() + ":" + std::to_string(c.http.port), c.dashboard.interval,
             c.dashboard.max_clients},
            metrics::global(), [this] { return consumer_lag_by_stage(); },
            [this] { return dashboard::newest_orders(pool, 20); }),
        server(ioc, c.http, routes) {
    pool.add_setup(orders::pg_order_repository::prepare_statements);
    pool.add_setup(inventory::pg_product_repository::prepare_statements);
    pool.add_setup(saga::step_engine::prepare_statements);
    pool.add_setup(orders::prepare_order_step_statements);
    pool.add_setup(inventory::prepare_reservation_statements);
    pool.add_setup(payments::payment_step::prepare_statements);
    pool.add_setup(payments::refund_worker::prepare_statements);
    pool.add_setup(orders::dead_letter_queue::prepare_statements);
    // The order saga's steps, in order, each from its business area.
    stages.on_command(orders::command_kind::release_inventory, inventory::release_reservation);
    stages.on_command(orders::command_kind::commit_inventory, inventory::commit_reservation);
    stages.on_command(orders::command_kind::refund_payment, payments::payment_step::request_refund);
    stages.on_refund_query(payments::payment_step::refund_requested);
    auto stage = [&](const std::string& name, const config::topic_config& topic,
                     saga::stage_runner runner) {
      if (!c.stages.runs(name))
        return;
      stages.add_stage(name, std::move(runner));
      consumers.push_back(std::make_unique<kafka::partitioned_consumer>(
          kafka::consumer_settings{c.kafka.bootstrap_servers, c.kafka.group_id, topic.name, 256},
          stage_workers,
          [this, name](const kafka::consumed_message& m) { return stages.handle(name, m); }));
    };
    // A step that only decides inside the engine's transaction.
    auto decided_by = [this](std::string name, saga::step_effect effect) -> saga::stage_runner {
      return [this, name = std::move(name), effect = std::move(effect)](
                 const kafka::consumed_message& m,
                 const saga::stage_retry* retry) -> asio::awaitable<void> {
        co_await stages.run_step(name, m, effect, retry);
      };
    };
    stage("validate", c.kafka.order_placed, decided_by("validate", orders::validation()));
    stage("reserve", c.kafka.order_validated, decided_by("reserve", inventory::reservation()));
    stage(payment_stage, c.kafka.inventory_reserved,
          [this](const kafka::consumed_message& m, const saga::stage_retry* retry) {
            return payment.run(m, retry);
          });
    stage("confirm", c.kafka.payment_processed, decided_by("confirm", orders::confirmation()));
  }

  asio::io_context ioc;
  pg::connection_pool pool;
  // Runs the blocking database calls of HTTP handlers; one thread per pooled connection.
  asio::thread_pool blocking;
  kafka::kafka_admin admin;
  kafka::producer producer;
  outbox::outbox_relay relay;
  orders::pg_order_repository orders;
  orders::pg_customer_repository customers;
  inventory::pg_product_repository products;
  payments::http_payment_gateway gateway;
  payments::circuit_breaking_gateway breaking_gateway;
  // The partitions' strands of every stage, and the retries, share these threads.
  asio::thread_pool stage_workers{2};
  // The stages' blocking database work, apart from the HTTP handlers', so that a burst of
  // requests cannot hold back the orders already accepted: a batch per stage at a time
  // (saga::engine_settings), plus room for payment checks and dead-lettering.
  asio::thread_pool stage_database{12};
  orders::dead_letter_queue dead_letters;
  saga::step_engine stages;
  payments::payment_step payment;
  payments::refund_worker refunds;
  saga::saga_jobs jobs;
  orders::data_retention retention;
  std::vector<std::unique_ptr<kafka::partitioned_consumer>> consumers;
  // Requests waiting for an order's final state, and what wakes them.
  runtime::waiter_registry waiters;
  orders::order_outcome_listener outcomes;
  runtime::health_monitor monitor;
  dashboard::dashboard_feed dashboard;
  http::router routes;
  http::server server;
  std::unique_ptr<pqxx::connection> probe_connection;

  // Lag over the partitions this replica holds, per stage (the consumers are built in the
  // dashboard's stage order).
  std::array<double, dashboard::stage_names.size()> consumer_lag_by_stage() const {
    std::array<double, dashboard::stage_names.size()> out{};
    for (std::size_t i = 0; i < consumers.size() && i < out.size(); ++i)
      for (const auto& l : consumers[i]->lag())
        out[i] += static_cast<double>(l.lag);
    return out;
  }

  std::atomic<bool> started{false};
  std::atomic<bool> draining{false};
  std::atomic<const char*> startup_phase{"starting"};
  std::mutex stop_mutex;
  std::condition_variable stop_requested_cv;
  bool stop_requested = false;
};

application::application(config::app_config config)
    : config_(std::move(config)), parts_(std::make_unique<parts>(config_)) {}

application::~application() = default;

int application::run() {
  auto logger = log::get("app");
  auto& p = *parts_;
  const auto& c = config_;

  p.monitor.add("db",
                [&p, url = c.database.url] { return probe_database(url, p.probe_connection); });
  p.monitor.add("kafka", [&p] { return p.admin.probe(2s); });
  const bool runs_payments = c.stages.runs(payment_stage);
  if (runs_payments)
    p.monitor.add_informational("paymentGateway", [&p] { return p.breaking_gateway.health(); });
  p.monitor.add_informational("stages", [&c] {
    return runtime::health_monitor::report{"UP", {{"enabled", c.stages.enabled}}};
  });

  http::add_health_routes(
      p.routes, p.monitor,
      [&p]() -> std::optional<std::string> {
        if (p.draining)
          return std::string("shutting down");
        if (!p.started)
          return std::string(p.startup_phase.load());
        return std::nullopt;
      },
      c.http.api_enabled);

  auto& registry = metrics::global();
  metrics::register_process_metrics(registry);
  // The per-stage series exist on every replica (at zero for a stage it does not run), so
  // sums over replicas and alerts see the same series everywhere; this says which run here.
  for (auto stage : config::all_stages)
    registry
        .get_gauge("pipeline_stage_enabled", "1 when this replica runs the saga stage, else 0.",
                   {{"stage", std::string(stage)}})
        .set(c.stages.runs(stage) ? 1 : 0);
  registry.add_callback("db_pool_connections", "PostgreSQL connections of the pool, by state.",
                        {{"state", "in_use"}},
                        [&p] { return static_cast<double>(p.pool.in_use()); });
  registry.add_callback("db_pool_connections", "PostgreSQL connections of the pool, by state.",
                        {{"state", "idle"}},
                        [&p] { return static_cast<double>(p.pool.size() - p.pool.in_use()); });
  registry.add_callback("pipeline_messages_in_flight",
                        "Messages handed to saga stages and not finished yet.", {}, [&p] {
                          double total = 0;
                          for (const auto& consumer : p.consumers)
                            total += consumer->in_flight();
                          return total;
                        });
  http::add_metrics_routes(p.routes, registry, [&p] {
    std::vector<http::lag_sample> out;
    for (const auto& consumer : p.consumers)
      for (const auto& l : consumer->lag())
        out.push_back({l.topic, l.partition, static_cast<double>(l.lag)});
    return out;
  });
  // A worker replica (app.http.api-enabled false) serves probes and metrics only: /api/*
  // the docs of that API and the dashboard are not routed, so they answer 404.
  if (c.http.api_enabled) {
    orders::add_order_routes(p.routes, {p.orders,
                                        p.customers,
                                        p.blocking,
                                        {c.orders.max_quantity, c.orders.max_items},
                                        c.admin.token,
                                        p.stages,
                                        p.waiters});
    inventory::add_product_routes(p.routes, {p.products, p.blocking, c.admin.token});
    orders::add_dlq_routes(p.routes,
                           {p.dead_letters, p.pool, p.blocking, c.admin.token, c.dlq.replay_rate});
    http::add_docs_routes(p.routes);
    dashboard::add_dashboard_routes(p.routes, p.dashboard);
  }

  try {
    p.server.start();
  } catch (const std::system_error& e) {
    logger->critical("cannot listen on {}:{}: {}", c.http.address, c.http.port, e.what());
    return 2;
  }
  p.monitor.start();
  p.dashboard.start();

  // Start-up work that needs the database and Kafka runs apart from the listener, so health
  // endpoints answer (not ready, with the reason) while a dependency is still coming up.
  std::thread startup([&] {
    auto wait_or_stop = [&](std::chrono::milliseconds d) {
      std::unique_lock lock(p.stop_mutex);
      return !p.stop_requested_cv.wait_for(lock, d, [&] { return p.stop_requested; });
    };
    p.startup_phase = "starting: applying database migrations";
    for (;;) {
      try {
        auto applied = p.pool.with_connection(
            [](pqxx::connection& conn) { return pg::migrate(conn, pg::embedded_migrations()); });
        if (applied.empty())
          logger->info("database schema is up to date");
        else
          logger->info("applied migrations: {}", fmt::join(applied, ", "));
        break;
      } catch (const std::exception& e) {
        logger->warn("migrations not applied yet, retrying: {}", e.what());
      }
      if (!wait_or_stop(2s))
        return;
    }
    p.startup_phase = "starting: creating Kafka topics";
    if (c.kafka.create_topics) {
      std::vector<kafka::topic_spec> topics;
      for (const auto& t : c.kafka.all_topics())
        topics.push_back({t.name, t.partitions, c.kafka.replication_factor});
      for (;;) {
        try {
          auto created = p.admin.ensure_topics(topics, 10s);
          if (!created.empty())
            logger->info("created topics: {}", fmt::join(created, ", "));
          break;
        } catch (const std::exception& e) {
          logger->warn("topics not created yet, retrying: {}", e.what());
        }
        if (!wait_or_stop(2s))
          return;
      }
    }
    std::vector<std::string> written_topics;
    for (const auto& t : c.kafka.all_topics())
      written_topics.push_back(t.name);
    if (auto unknown = p.producer.prepare_topics(written_topics, 5s); !unknown.empty())
      logger->warn("no metadata yet for {}: their first events may wait for it",
                   fmt::join(unknown, ", "));
    p.relay.start();
    for (auto& consumer : p.consumers)
      consumer->start();
    if (runs_payments)
      p.refunds.start(p.ioc);
    p.jobs.start();
    p.retention.start();
    if (c.http.api_enabled) {
      // Ready once outcomes are heard, so a waiting request is woken from the first order on.
      p.outcomes.start();
      for (int i = 0; i < 100 && !p.outcomes.listening(); ++i)
        if (!wait_or_stop(100ms))
          return;
    }
    p.started = true;
    logger->info("order-pipeline started on port {}: stages [{}], API {}", p.server.port(),
                 fmt::join(c.stages.enabled, ", "), c.http.api_enabled ? "on" : "off");
  });

  asio::signal_set signals(p.ioc, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec)
      return;
    logger->info("received {}, draining", signal == SIGTERM ? "SIGTERM" : "SIGINT");
    p.draining = true;  // readiness turns false at once
    {
      std::lock_guard lock(p.stop_mutex);
      p.stop_requested = true;
    }
    p.stop_requested_cv.notify_all();
  });

  unsigned threads = c.http.threads > 0 ? static_cast<unsigned>(c.http.threads)
                                        : std::max(2u, std::thread::hardware_concurrency());
  // Keeps the I/O threads running until the very end: the gateway calls of draining stages,
  // retries and refunds still need them after the listener has closed.
  auto keep_running = asio::make_work_guard(p.ioc);
  std::vector<std::thread> io_threads;
  for (unsigned i = 0; i < threads; ++i)
    io_threads.emplace_back([&] { p.ioc.run(); });

  {
    std::unique_lock lock(p.stop_mutex);
    p.stop_requested_cv.wait(lock, [&] { return p.stop_requested; });
  }

  // Shutdown, in reverse order of start: HTTP first (no new orders), then the stages finish
  // what they hold and commit their offsets, then the relay publishes what is committed.
  auto deadline = std::chrono::steady_clock::now() + c.runtime.shutdown_timeout;
  p.server.stop();
  p.waiters.drain();  // waiting requests answer the order as it stands
  while (p.server.open_connections() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  if (auto left = p.server.open_connections())
    logger->warn("closing {} connections still open after the drain timeout", left);
  p.server.close_all();
  p.dashboard.stop();
  startup.join();
  p.outcomes.stop();
  auto remaining = [&] {
    return std::max(std::chrono::milliseconds(0),
                    std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now()));
  };
  for (auto& consumer : p.consumers)
    consumer->stop(remaining());
  // Offsets are committed: what still waits for the database is delivered again later.
  p.stages.abandon_waiting_steps();
  p.jobs.stop();
  p.retention.stop();
  p.refunds.stop();
  p.relay.stop();
  keep_running.reset();
  p.ioc.stop();
  for (auto& t : io_threads)
    t.join();
  p.stage_workers.join();
  p.stage_database.join();
  p.blocking.join();
  if (!p.producer.flush(std::chrono::seconds(5)))
    logger->warn("some Kafka messages were not flushed");
  p.monitor.stop();
  logger->info("stopped");
  return 0;
}

}  // namespace op::bootstrap
