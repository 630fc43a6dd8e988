#include "bootstrap/application.hpp"

#include <fmt/format.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "dashboard/dashboard_feed.hpp"
#include "dashboard/dashboard_routes.hpp"
#include "dashboard/pg_newest_orders.hpp"
#include "handlers/event_handler_runtime.hpp"
#include "inventory/adapters/pg_product_repository.hpp"
#include "inventory/adapters/product_routes.hpp"
#include "inventory/steps/reservation_step.hpp"
#include "orders/adapters/data_retention.hpp"
#include "orders/adapters/dead_letters.hpp"
#include "orders/adapters/dlq_routes.hpp"
#include "orders/adapters/order_event_payloads.hpp"
#include "orders/adapters/order_outcome_listener.hpp"
#include "orders/adapters/order_routes.hpp"
#include "orders/adapters/pg_order_repository.hpp"
#include "orders/domain/order_saga_definition.hpp"
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
#include "platform/outbox/after_commit_publisher.hpp"
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

orders::retry_policy retry_policy_of(const config::app_config& c) {
  orders::retry_policy retry;
  retry.max_retries = c.retry.max_attempts;
  retry.base_delay = c.retry.backoff_delay;
  return retry;
}

saga::engine_settings saga_settings_of(const config::app_config& c) {
  saga::engine_settings s;
  s.order_placed_topic = c.kafka.order_placed.name;
  s.order_failed_topic = c.kafka.order_failed.name;
  s.republish_after = c.saga.republish_after;
  s.conflict_retry = retry_policy_of(c);
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
// - on every replica: the outbox relay (the stages' final events, the sweeper's, the events
//   sent again for stalled orders, dead letters and replays), the deadline sweeper and the
//   queued DLQ replays (PostgreSQL only; they must go on while a stage has no replica at
//   all), the migrations and the creation of every configured topic.
const char* const payment_stage = "pay";

// How long after its commit the relay may publish an event the writer publishes itself
// (outbox::after_commit_publisher): what Kafka did not acknowledge by then is the relay's.
constexpr std::chrono::milliseconds relay_after_commit{1000};

}  // namespace

struct application::parts {
  parts(const config::app_config& c, program_declaration program)
      : pool(c.database.url, static_cast<std::size_t>(c.database.pool_size),
             c.database.connect_timeout),
        blocking(static_cast<std::size_t>(c.database.pool_size)),
        admin(c.kafka.bootstrap_servers),
        producer(c.kafka.bootstrap_servers, std::chrono::seconds(10)),
        // Polls every 20 ms: what it publishes at once is what no writer publishes after its
        // commit (dead letters, replays), and what those did not get acknowledged.
        relay({c.database.url,
               500,
               std::chrono::milliseconds(20),
               {{orders::order_payload_renderer, orders::render_order_payloads}}},
              producer),
        after_commit(c.database.url, c.kafka.bootstrap_servers, relay_after_commit,
                     c.saga.republish_after),
        orders(pool, c.kafka.order_placed.name),
        customers(pool),
        products(pool),
        gateway(ioc, c.payment.gateway_url, c.payment.timeout, c.payment.max_retries, 64),
        breaking_gateway(gateway, breaker_settings(c.payment.circuit_breaker)),
        dead_letters(c.kafka.dlq_orders.name),
        stages(pool, stage_database, dead_letters, saga_settings_of(c)),
        refunds(pool, breaking_gateway, {c.payment.timeout}),
        handlers({c.kafka.bootstrap_servers,
                  c.kafka.group_id,
                  {c.kafka.order_confirmed.name, c.kafka.order_failed.name},
                  retry_policy_of(c),
                  2},
                 pool, dead_letters, std::move(program.handlers)),
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
    orders.publish_after_commit_with(after_commit);
    stages.publish_after_commit_with(after_commit);
    pool.add_setup(orders::pg_order_repository::prepare_statements);
    pool.add_setup(inventory::pg_product_repository::prepare_statements);
    pool.add_setup(saga::step_engine::prepare_statements);
    pool.add_setup(orders::prepare_order_step_statements);
    pool.add_setup(inventory::prepare_reservation_statements);
    pool.add_setup(payments::prepare_payment_statements);
    pool.add_setup(payments::refund_worker::prepare_statements);
    pool.add_setup(orders::dead_letter_queue::prepare_statements);
    // The saga's steps, in order: the built-in ones each from its business area, a shop's
    // own as its program declared them. Each consumes the event of the step before it (the
    // first, orders.placed).
    for (auto& step : program.steps)
      stages.declare(resolved(c, step.action ? std::move(step) : built_in_step(step.name)));
    stages.seal();
    stages.on_refund_query(payments::refund_requested);
    std::string consumed = c.kafka.order_placed.name;
    for (const auto& step : stages.definition().steps()) {
      if (c.stages.runs(step.name))
        consume(c, consumed, step.name);
      consumed = stages.topic_of(step.name);
    }
  }

  // A consumer of `topic` in the application's group, handing its messages to `step`.
  void consume(const config::app_config& c, const std::string& topic, const std::string& step) {
    std::lock_guard lock(consumers_mutex);
    consumers.push_back(std::make_unique<kafka::partitioned_consumer>(
        kafka::consumer_settings{c.kafka.bootstrap_servers, c.kafka.group_id, topic, 256},
        stage_workers,
        [this, step](const kafka::consumed_message& m) { return stages.handle(step, m); }));
    consumer_steps.push_back(step);
  }

  // order-pipeline's own steps, by name.
  order_pipeline::step built_in_step(const std::string& name) {
    if (name == "validate")
      return orders::validation_step();
    if (name == "reserve")
      return inventory::reservation_step();
    if (name == payment_stage)
      return payments::payment_step(breaking_gateway);
    if (name == "confirm")
      return orders::confirmation_step();
    throw std::invalid_argument("step " + name + " has no action and is not a built-in step");
  }

  // The step with what the configuration decides filled in: its topic, deadline and retry
  // policy (the configuration's own keys for a built-in step; app.kafka.topics.<name> and
  // app.saga.deadline.<name> for a shop's, else what it declared).
  static order_pipeline::step resolved(const config::app_config& c, order_pipeline::step step) {
    const std::map<std::string, std::pair<const config::topic_config*, std::chrono::milliseconds>>
        built_in = {
            {"validate", {&c.kafka.order_validated, c.saga.validation_deadline}},
            {"reserve", {&c.kafka.inventory_reserved, c.saga.reservation_deadline}},
            {payment_stage, {&c.kafka.payment_processed, c.saga.payment_deadline}},
            {"confirm", {&c.kafka.order_confirmed, c.saga.confirmation_deadline}},
        };
    if (auto it = built_in.find(step.name); it != built_in.end()) {
      step.topic = it->second.first->name;
      step.deadline = it->second.second;
    } else {
      if (auto topic = c.kafka.step_topics.find(step.name); topic != c.kafka.step_topics.end())
        step.topic = topic->second.name;
      if (auto deadline = c.saga.step_deadlines.find(step.name);
          deadline != c.saga.step_deadlines.end())
        step.deadline = deadline->second;
    }
    if (step.topic.empty())
      step.topic = "orders." + step.name;
    if (step.event_type.empty())
      step.event_type = step.name;
    if (!step.deadline)
      step.deadline = std::chrono::milliseconds(300000);
    if (!step.retry)
      step.retry = order_pipeline::retry_policy{c.retry.max_attempts, c.retry.backoff_delay};
    if (step.timeout_reason.empty()) {
      step.timeout_reason = step.name + "_TIMEOUT";
      for (auto& ch : step.timeout_reason)
        ch = ch == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    }
    return step;
  }

  asio::io_context ioc;
  pg::connection_pool pool;
  // Runs the blocking database calls of HTTP handlers; one thread per pooled connection.
  asio::thread_pool blocking;
  kafka::kafka_admin admin;
  kafka::producer producer;
  outbox::outbox_relay relay;
  outbox::after_commit_publisher after_commit;
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
  payments::refund_worker refunds;
  // A program's own event handlers (none in order-pipeline itself).
  handlers::event_handler_runtime handlers;
  saga::saga_jobs jobs;
  orders::data_retention retention;
  std::vector<std::unique_ptr<kafka::partitioned_consumer>> consumers;
  std::vector<std::string> consumer_steps;  // the step each consumer hands its messages to
  // Consumers are added at start (the routes of earlier step lists) while /metrics and the
  // dashboard may already read them; only the starting thread adds or stops them.
  mutable std::mutex consumers_mutex;
  // Requests waiting for an order's final state, and what wakes them.
  runtime::waiter_registry waiters;
  orders::order_outcome_listener outcomes;
  runtime::health_monitor monitor;
  dashboard::dashboard_feed dashboard;
  http::router routes;
  http::server server;
  std::unique_ptr<pqxx::connection> probe_connection;

  // Lag over the partitions this replica holds, per built-in stage.
  std::array<double, dashboard::stage_names.size()> consumer_lag_by_stage() const {
    std::array<double, dashboard::stage_names.size()> out{};
    std::lock_guard lock(consumers_mutex);
    for (std::size_t i = 0; i < consumers.size(); ++i)
      for (std::size_t stage = 0; stage < out.size(); ++stage)
        if (consumer_steps[i] == dashboard::stage_names[stage])
          for (const auto& l : consumers[i]->lag())
            out[stage] += static_cast<double>(l.lag);
    return out;
  }

  std::atomic<bool> started{false};
  std::atomic<bool> draining{false};
  std::atomic<const char*> startup_phase{"starting"};
  std::mutex stop_mutex;
  std::condition_variable stop_requested_cv;
  bool stop_requested = false;
};

application::application(config::app_config config, program_declaration program)
    : config_(std::move(config)), parts_(std::make_unique<parts>(config_, std::move(program))) {}

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
  for (const auto& stage : p.stages.definition().step_names())
    registry
        .get_gauge("pipeline_stage_enabled", "1 when this replica runs the saga stage, else 0.",
                   {{"stage", stage}})
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
                          std::lock_guard lock(p.consumers_mutex);
                          for (const auto& consumer : p.consumers)
                            total += consumer->in_flight();
                          return total;
                        });
  http::add_metrics_routes(p.routes, registry, [&p] {
    std::vector<http::lag_sample> out;
    std::lock_guard lock(p.consumers_mutex);
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
                                        p.waiters,
                                        c.http.max_pending_orders});
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
        // New orders' sagas keep this program's steps, whatever a later release declares.
        auto step_list = p.pool.with_connection(
            [&p](pqxx::connection& conn) { return p.stages.register_step_list(conn); });
        p.orders.start_sagas_with(step_list);
        for (const auto& route : p.pool.with_connection([&p](pqxx::connection& conn) {
               return p.stages.routes_for_undeclared_steps(conn);
             })) {
          if (!c.stages.runs(route.step))
            continue;
          logger->info("orders of an earlier step list wait on {}: consumed for {}", route.topic,
                       route.step);
          p.consume(c, route.topic, route.step);
        }
        logger->info("saga steps: {} (list {})",
                     fmt::join(p.stages.definition().step_names(), " -> "), step_list);
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
    // Every pooled connection opened and its statements prepared before the first order:
    // otherwise the first orders after a start each wait for one.
    p.startup_phase = "starting: opening database connections";
    try {
      p.pool.open_all();
    } catch (const std::exception& e) {
      logger->warn("could not open every database connection at start: {}", e.what());
    }
    std::vector<std::string> written_topics;
    for (const auto& t : c.kafka.all_topics())
      written_topics.push_back(t.name);
    auto producers = p.after_commit.producers();
    producers.push_back(&p.producer);
    for (auto* producer_of : producers)
      if (auto unknown = producer_of->prepare_topics(written_topics, 5s); !unknown.empty())
        logger->warn("no metadata yet for {}: their first events may wait for it",
                     fmt::join(unknown, ", "));
    p.after_commit.start();
    p.relay.start();
    for (auto& consumer : p.consumers)
      consumer->start();
    p.handlers.start();
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
  p.handlers.stop(remaining());
  // Offsets are committed: what still waits for the database is delivered again later.
  p.stages.abandon_waiting_steps();
  p.jobs.stop();
  p.retention.stop();
  p.refunds.stop();
  p.after_commit.stop(remaining());
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
