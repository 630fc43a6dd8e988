#include "saga/engine/saga_jobs.hpp"

#include <future>

#include "platform/log/logging.hpp"
#include "platform/metrics/registry.hpp"

namespace op::saga {

using namespace std::chrono_literals;

saga_jobs::saga_jobs(step_engine& stages, const orders::dead_letter_queue& dead_letters,
                     pg::connection_pool& pool, asio::thread_pool& workers,
                     saga_job_settings settings)
    : stages_(stages),
      dead_letters_(dead_letters),
      pool_(pool),
      workers_(workers),
      settings_(settings) {
  auto& registry = metrics::global();
  registry.get_gauge("pipeline_retries_pending",
                     "Saga steps waiting in stage_retries to run again.");
  for (const char* status : {"PARKED", "QUEUED", "REPLAYED"})
    registry.get_gauge("dlq_entries", "Dead letters in the database, by status.",
                       {{"status", status}});
}

saga_jobs::~saga_jobs() {
  stop();
}

void saga_jobs::start() {
  threads_.emplace_back([this] { run_retries(); });
  threads_.emplace_back([this] { sweep_deadlines(); });
  threads_.emplace_back([this] { replay_queued(); });
}

void saga_jobs::stop() {
  stopping_ = true;
  for (auto& t : threads_)
    if (t.joinable())
      t.join();
  threads_.clear();
}

bool saga_jobs::pause(std::chrono::milliseconds d) {
  auto until = std::chrono::steady_clock::now() + d;
  while (!stopping_ && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(d, 50ms));
  return !stopping_;
}

void saga_jobs::run_retries() {
  auto logger = log::get("saga");
  do {
    try {
      // A batch runs concurrently (each is mostly a gateway call) and is waited for before
      // the next claim, which bounds the retries in flight per replica.
      auto due = stages_.claim_due_retries(64, settings_.retried_stages);
      std::vector<std::future<void>> running;
      for (const auto& retry : due)
        running.push_back(asio::co_spawn(
            workers_, stages_.run_retry(retry, settings_.retried_stages), asio::use_future));
      for (auto& r : running)
        r.get();
      if (!due.empty())
        continue;
      measure();
    } catch (const std::exception& e) {
      logger->warn("retry scheduler: {}", e.what());
    }
  } while (pause(settings_.retry_poll));
}

void saga_jobs::sweep_deadlines() {
  auto logger = log::get("saga");
  do {
    try {
      while (!stopping_ && stages_.expire_overdue(100) > 0) {
      }
      stages_.republish_stalled(500);
    } catch (const std::exception& e) {
      logger->warn("deadline sweeper: {}", e.what());
    }
  } while (pause(settings_.sweep_interval));
}

void saga_jobs::replay_queued() {
  auto logger = log::get("saga");
  do {
    try {
      pool_.with_connection([&](pqxx::connection& c) {
        pqxx::work tx(c);
        if (dead_letters_.replay_queued(tx, settings_.replay_rate) > 0)
          tx.commit();
      });
    } catch (const std::exception& e) {
      logger->warn("DLQ replayer: {}", e.what());
    }
  } while (pause(1s));
}

void saga_jobs::measure() {
  auto now = std::chrono::steady_clock::now();
  if (now - last_measured_ < 1s)
    return;  // once a second is plenty
  last_measured_ = now;
  auto& registry = metrics::global();
  registry
      .get_gauge("pipeline_retries_pending", "Saga steps waiting in stage_retries to run again.")
      .set(static_cast<double>(stages_.pending_retries()));
  std::map<std::string, std::int64_t> by_status = {{"PARKED", 0}, {"QUEUED", 0}, {"REPLAYED", 0}};
  pool_.with_connection([&](pqxx::connection& c) {
    pqxx::work tx(c);
    for (const auto& [status, count] : dead_letters_.count_by_status(tx))
      by_status[status] = count;
  });
  for (const auto& [status, count] : by_status)
    registry
        .get_gauge("dlq_entries", "Dead letters in the database, by status.", {{"status", status}})
        .set(static_cast<double>(count));
}

}  // namespace op::saga
