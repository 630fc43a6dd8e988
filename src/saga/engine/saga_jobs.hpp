#pragma once
// The saga's background work, on every replica, none of it waiting for new traffic:
// - the retry scheduler runs the steps whose retry is due (stage_retries), of the stages this
//   replica runs only (a pay retry needs the payment gateway; another replica's stage may
//   need what this one lacks), so a retry waits in the table until such a replica takes it;
// - the deadline sweeper compensates sagas stuck in a step past its deadline, and sends again
//   the event that starts the step of orders waiting at it too long (a lost event);
// - the DLQ replayer re-injects entries queued by a bulk replay, at most replay_rate per second.
// Rows are claimed with FOR UPDATE SKIP LOCKED, so replicas share the work without doing any
// of it twice. Each loop has its own thread; a database outage only makes them wait.

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "orders/adapters/dead_letters.hpp"
#include "saga/engine/step_engine.hpp"

namespace op::saga {

struct saga_job_settings {
  std::chrono::milliseconds retry_poll{200};
  std::chrono::milliseconds sweep_interval{1000};
  int replay_rate = 50;                     // per second
  std::vector<std::string> retried_stages;  // the stages this replica runs
};

class saga_jobs {
 public:
  saga_jobs(step_engine& stages, const orders::dead_letter_queue& dead_letters,
            pg::connection_pool& pool, asio::thread_pool& workers, saga_job_settings settings);
  ~saga_jobs();
  saga_jobs(const saga_jobs&) = delete;
  saga_jobs& operator=(const saga_jobs&) = delete;

  void start();
  // Finishes the retries being run, then returns.
  void stop();

 private:
  void run_retries();
  void sweep_deadlines();
  void replay_queued();
  void measure();
  // Sleeps up to `d`; false once stopping.
  bool pause(std::chrono::milliseconds d);

  step_engine& stages_;
  const orders::dead_letter_queue& dead_letters_;
  pg::connection_pool& pool_;
  asio::thread_pool& workers_;
  const saga_job_settings settings_;
  std::atomic<bool> stopping_{false};
  std::chrono::steady_clock::time_point last_measured_{};  // retry thread only
  std::vector<std::thread> threads_;
};

}  // namespace op::saga
