#include "orders/adapters/data_retention.hpp"

#include <array>
#include <pqxx/pqxx>

#include "platform/log/logging.hpp"
#include "platform/metrics/registry.hpp"

namespace op::orders {

namespace {

struct purge_rule {
  const char* table;
  const char* expired;  // the condition on a row, $1 being the retention in hours
  std::chrono::hours retention_settings::*retention;
};

constexpr std::array<purge_rule, 3> rules{{
    {"processed_events", "processed_at < now() - make_interval(hours => $1)",
     &retention_settings::event_claims},
    {"idempotency_keys", "created_at < now() - make_interval(hours => $1)",
     &retention_settings::idempotency_keys},
    {"dead_letters", "status = 'REPLAYED' AND replayed_at < now() - make_interval(hours => $1)",
     &retention_settings::replayed_dead_letters},
}};

metrics::counter& deleted_counter(const char* table) {
  return metrics::global().get_counter("retention_rows_deleted_total",
                                       "Transient rows the retention job deleted, by table.",
                                       {{"table", table}});
}

}  // namespace

data_retention::data_retention(pg::connection_pool& pool, retention_settings settings)
    : pool_(pool), settings_(settings) {
  for (const auto& rule : rules)
    deleted_counter(rule.table);  // exported from the start, at 0
}

data_retention::~data_retention() {
  stop();
}

void data_retention::start() {
  thread_ = std::thread([this] { run(); });
}

void data_retention::stop() {
  stopping_ = true;
  if (thread_.joinable())
    thread_.join();
}

std::int64_t data_retention::purge_once() {
  std::int64_t total = 0;
  for (const auto& rule : rules) {
    const auto sql = std::string("DELETE FROM ") + rule.table +
                     " WHERE ctid = ANY (ARRAY(SELECT ctid FROM " + rule.table + " WHERE " +
                     rule.expired + " LIMIT $2))";
    for (;;) {
      auto deleted = pool_.with_connection([&](pqxx::connection& c) -> std::int64_t {
        pqxx::work tx(c);
        // One replica at a time: the others would only wait on the same rows.
        if (!tx.exec1("SELECT pg_try_advisory_xact_lock(hashtext('order-pipeline.retention'))")[0]
                 .as<bool>())
          return -1;
        auto rows = tx.exec_params0(sql, (settings_.*rule.retention).count(), settings_.batch_size)
                        .affected_rows();
        tx.commit();
        return static_cast<std::int64_t>(rows);
      });
      if (deleted < 0)
        return total;  // another replica is purging
      deleted_counter(rule.table).inc(static_cast<double>(deleted));
      total += deleted;
      if (deleted < settings_.batch_size || stopping_)
        break;
    }
  }
  return total;
}

void data_retention::run() {
  auto logger = log::get("orders");
  auto next = std::chrono::steady_clock::now();
  while (!stopping_) {
    if (std::chrono::steady_clock::now() >= next) {
      try {
        if (auto deleted = purge_once(); deleted > 0)
          logger->info("deleted {} expired transient rows", deleted);
      } catch (const std::exception& e) {
        logger->warn("retention: {}", e.what());
      }
      next = std::chrono::steady_clock::now() + settings_.interval;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace op::orders
