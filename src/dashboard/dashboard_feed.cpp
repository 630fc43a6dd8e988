#include "dashboard/dashboard_feed.hpp"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>

#include "dashboard/metrics_reader.hpp"
#include "platform/log/logging.hpp"

namespace op::dashboard {

// Shared by the feed and its streams, so that a stream the server still holds after the feed
// is gone reads a stopped feed rather than freed memory.
struct dashboard_feed::state {
  // One viewer's wake-up: the publisher cancels its timer on the viewer's own strand.
  struct viewer {
    std::optional<asio::steady_timer> timer;
    std::uint64_t seen = 0;
  };

  mutable std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  bool wanted = false;  // a first viewer arrived: render one now
  int viewers = 0;
  std::uint64_t sequence = 0;
  std::shared_ptr<const std::string> latest;  // the framed event of `sequence`
  std::vector<std::weak_ptr<viewer>> waiting;

  void publish(std::string event) {
    std::vector<std::shared_ptr<viewer>> to_wake;
    {
      std::lock_guard lock(mutex);
      latest = std::make_shared<const std::string>(std::move(event));
      ++sequence;
      for (auto& weak : waiting)
        if (auto v = weak.lock())
          to_wake.push_back(std::move(v));
      waiting.clear();
    }
    for (auto& v : to_wake)
      if (v->timer)
        asio::post(v->timer->get_executor(), [v] { v->timer->cancel(); });
  }
};

class dashboard_feed::stream : public http::event_source {
 public:
  stream(std::shared_ptr<state> s, std::chrono::milliseconds interval)
      : state_(std::move(s)), viewer_(std::make_shared<state::viewer>()), interval_(interval) {
    // A snapshot rendered while others watch is fresh; the first viewer waits for a new one.
    std::lock_guard lock(state_->mutex);
    viewer_->seen =
        state_->viewers > 1 && state_->sequence > 0 ? state_->sequence - 1 : state_->sequence;
  }
  ~stream() override {
    std::lock_guard lock(state_->mutex);
    --state_->viewers;
  }

  asio::awaitable<std::optional<std::string>> next() override {
    if (!viewer_->timer)
      viewer_->timer.emplace(co_await asio::this_coro::executor);
    for (;;) {
      {
        std::lock_guard lock(state_->mutex);
        if (state_->stopping)
          co_return std::nullopt;
        if (state_->latest && state_->sequence > viewer_->seen) {
          viewer_->seen = state_->sequence;
          co_return *state_->latest;
        }
        state_->waiting.push_back(viewer_);
      }
      // Woken by the next snapshot; the bound only guards against a missed wake-up. The
      // publisher's cancel is posted to this strand, so it cannot slip in before the wait.
      viewer_->timer->expires_after(interval_ * 2);
      boost::system::error_code ignored;
      co_await viewer_->timer->async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
  }

 private:
  std::shared_ptr<state> state_;
  std::shared_ptr<state::viewer> viewer_;
  std::chrono::milliseconds interval_;
};

dashboard_feed::dashboard_feed(settings s, const metrics::registry& registry, lag_reader lag,
                               orders_reader newest_orders)
    : settings_(std::move(s)),
      registry_(registry),
      lag_(std::move(lag)),
      newest_orders_(std::move(newest_orders)),
      state_(std::make_shared<state>()) {}

dashboard_feed::~dashboard_feed() {
  stop();
}

void dashboard_feed::start() {
  thread_ = std::thread([this] { run(); });
}

void dashboard_feed::stop() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
  }
  state_->wake.notify_all();
  if (thread_.joinable())
    thread_.join();
  // Wakes the streams still waiting, which then end.
  state_->publish({});
}

std::unique_ptr<http::event_source> dashboard_feed::subscribe() {
  {
    std::lock_guard lock(state_->mutex);
    if (state_->stopping || state_->viewers >= settings_.max_clients)
      return nullptr;
    if (++state_->viewers == 1)
      state_->wanted = true;
  }
  state_->wake.notify_all();
  return std::make_unique<stream>(state_, settings_.interval);
}

int dashboard_feed::viewers() const {
  std::lock_guard lock(state_->mutex);
  return state_->viewers;
}

void dashboard_feed::run() {
  auto logger = log::get("dashboard");
  std::deque<metrics_reading> history;
  auto points = static_cast<std::size_t>(
                    std::chrono::duration_cast<std::chrono::milliseconds>(settings_.history) /
                    settings_.interval) +
                1;
  auto next_reading = std::chrono::steady_clock::now();
  for (;;) {
    bool render = false;
    {
      std::unique_lock lock(state_->mutex);
      state_->wake.wait_until(lock, next_reading,
                              [&] { return state_->stopping || state_->wanted; });
      if (state_->stopping)
        return;
      render = state_->wanted;
      state_->wanted = false;
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= next_reading) {
      // Metrics are read whether or not anyone watches (a few lookups), so a new viewer's
      // charts show the last minutes at once.
      auto unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
      std::array<double, stage_names.size()> lag{};
      try {
        lag = lag_();
      } catch (const std::exception& e) {
        logger->debug("consumer lag not read: {}", e.what());
      }
      history.push_back(read_metrics(registry_, lag, unix_ms));
      while (history.size() > points)
        history.pop_front();
      next_reading += settings_.interval;
      if (next_reading < now)
        next_reading = now + settings_.interval;  // fell behind (a stall): no burst of readings
      render = true;
    }
    if (!render || viewers() == 0)
      continue;
    std::vector<order_row> orders;
    snapshot_inputs in;
    try {
      orders = newest_orders_();
      in.newest_orders = &orders;
    } catch (const std::exception& e) {
      in.database_error = e.what();
    }
    std::vector<metrics_reading> readings(history.begin(), history.end());
    in.replica = settings_.replica;
    in.interval_ms = settings_.interval.count();
    in.history = readings;
    in.window_seconds = settings_.window_seconds;
    state_->publish(http::sse_event("snapshot", snapshot_json(in)));
  }
}

}  // namespace op::dashboard
