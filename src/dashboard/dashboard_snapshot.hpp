#pragma once
// What the operator dashboard shows, as one JSON document per interval: a pure function of
// the metrics readings of the last minutes and the database's newest orders, so it can be
// tested without a server. dashboard_feed computes it once per interval for every viewer.
//
// Scope, written into the document for the page to show: the database-derived figures
// (newest orders, outbox backlog, retries pending, dead letters) are cluster-wide; the
// process metrics (outcome rates, latencies, stage figures, consumer lag of the partitions
// this replica holds, the circuit breaker) are this replica's.

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace op::dashboard {

inline constexpr std::array<std::string_view, 4> stage_names = {"validate", "reserve", "pay",
                                                                "confirm"};

// A histogram's cumulative bucket counts (+Inf last), as the metrics registry keeps them.
struct histogram_reading {
  std::vector<double> upper_bounds;
  std::vector<std::uint64_t> cumulative;
};

// The q-quantile (0..1) of what a histogram observed between two readings of it, estimated
// as Prometheus' histogram_quantile does (linear within the bucket; the highest finite bound
// when it falls in +Inf). nullopt when nothing was observed in between.
std::optional<double> quantile(const histogram_reading& earlier, const histogram_reading& later,
                               double q);

// Adds `more` into `into` (same buckets; an empty `into` takes `more`'s).
void merge(histogram_reading& into, const histogram_reading& more);

// This replica's cumulative metrics and the cluster-wide gauges at one instant.
struct metrics_reading {
  std::int64_t at_unix_ms = 0;
  double confirmed = 0, cancelled = 0, failed = 0;  // orders that reached it, since start
  histogram_reading end_to_end;                     // placement to final state, every status
  struct stage_reading {
    double messages = 0;  // handled, any outcome, since start
    histogram_reading duration;
    double consumer_lag = 0;  // over the partitions this replica holds
  };
  std::array<stage_reading, stage_names.size()> stages;
  std::string breaker_state = "CLOSED";  // CLOSED, OPEN or HALF_OPEN
  // Cluster-wide (measured from the database by the relay and the saga jobs every second).
  double outbox_backlog = 0, outbox_lag_seconds = 0, retries_pending = 0;
  double dead_letters_parked = 0, dead_letters_queued = 0, dead_letters_replayed = 0;
};

// One row of the newest orders.
struct order_row {
  std::string order_id;
  std::string status;
  std::string reason;  // empty unless cancelled or failed
  std::int64_t total_cents = 0;
  std::string created_at;  // ISO 8601, UTC
  std::string updated_at;
};

struct snapshot_inputs {
  std::string replica;  // host:port
  std::int64_t interval_ms = 1000;
  // Oldest first, one per interval; the last is now.
  std::span<const metrics_reading> history;
  // Seconds of history each latency percentile and stage figure is computed over.
  int window_seconds = 10;
  // Newest first; null when the database could not be read this time (database_error says why).
  const std::vector<order_row>* newest_orders = nullptr;
  std::string database_error;
};

// The snapshot document (see api/openapi.yaml, DashboardSnapshot, for its fields).
std::string snapshot_json(const snapshot_inputs& in);

}  // namespace op::dashboard
