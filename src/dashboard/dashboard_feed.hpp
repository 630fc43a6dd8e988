#pragma once
// The live feed behind /dashboard/stream. A thread of its own reads this replica's metrics
// once per interval (kept for the last minutes, for the charts) and, while anyone watches,
// reads the newest orders from the database and renders one snapshot (dashboard_snapshot)
// that every viewer's stream then sends: the cost is per interval, never per viewer, and
// nothing is added to the message path. At most max_clients streams are open at once.
//
// Owned by the application; start() and stop() from the main thread; subscribe() from any
// thread; a stream's next() on its connection's strand. Streams may outlive the feed.

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "dashboard/dashboard_snapshot.hpp"
#include "platform/http/event_stream.hpp"
#include "platform/metrics/registry.hpp"

namespace op::dashboard {

class dashboard_feed {
 public:
  struct settings {
    std::string replica;  // host:port, shown on the page
    std::chrono::milliseconds interval{1000};
    int max_clients = 32;
    std::chrono::seconds history{300};  // how far back the charts reach
    int window_seconds = 10;            // percentiles and stage rates are over this
  };
  // Consumer lag per stage (stage_names order), over the partitions this replica holds.
  using lag_reader = std::function<std::array<double, stage_names.size()>()>;
  // The newest orders, newest first; throws when the database cannot be read.
  using orders_reader = std::function<std::vector<order_row>()>;

  dashboard_feed(settings s, const metrics::registry& registry, lag_reader lag,
                 orders_reader newest_orders);
  ~dashboard_feed();
  dashboard_feed(const dashboard_feed&) = delete;
  dashboard_feed& operator=(const dashboard_feed&) = delete;

  void start();
  // Ends every stream at its next wake-up.
  void stop();

  // A stream of "snapshot" events for one viewer, its first event as soon as there is a
  // fresh snapshot; nullptr when max_clients streams are open.
  std::unique_ptr<http::event_source> subscribe();
  int viewers() const;

 private:
  struct state;
  class stream;
  void run();

  const settings settings_;
  const metrics::registry& registry_;
  lag_reader lag_;
  orders_reader newest_orders_;
  std::shared_ptr<state> state_;
  std::thread thread_;
};

}  // namespace op::dashboard
