#pragma once
// Purges the pipeline's transient rows once they can no longer matter, so tables stay
// bounded however long the server runs (app.retention.*):
// - event claims (processed_events) older than the longest time a stage event can still be
//   delivered again;
// - Idempotency-Key answers past the time a client may retry with the same key (24 h);
// - dead letters already replayed, after operators had time to look at them.
// Published outbox rows and finished retries are deleted when they are done; autovacuum
// settings in sql/005_retention.sql reclaim their space. Every replica runs the job; an
// advisory lock lets one of them at a time delete, in short batches that never hold the hot
// path's rows for long.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "platform/pg/connection_pool.hpp"

namespace op::orders {

struct retention_settings {
  std::chrono::milliseconds interval{60000};
  std::chrono::hours event_claims{48};
  std::chrono::hours idempotency_keys{24};
  std::chrono::hours replayed_dead_letters{168};
  int batch_size = 5000;
};

class data_retention {
 public:
  data_retention(pg::connection_pool& pool, retention_settings settings);
  ~data_retention();
  data_retention(const data_retention&) = delete;
  data_retention& operator=(const data_retention&) = delete;

  void start();
  void stop();

  // One pass over every kind of transient row; returns the rows deleted. The background
  // thread calls it every `interval`; tests call it directly.
  std::int64_t purge_once();

 private:
  void run();

  pg::connection_pool& pool_;
  const retention_settings settings_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace op::orders
