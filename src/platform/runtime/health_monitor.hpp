#pragma once
// Probes the components the server depends on (database, Kafka) on a background thread
// every interval and keeps their last state, so health endpoints answer at once and never
// hang on a dead dependency. Any thread may read snapshot().

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace op::runtime {

class health_monitor {
 public:
  // nullopt when the component works, else why it does not.
  using probe = std::function<std::optional<std::string>()>;

  struct component_state {
    bool up = false;
    std::string reason = "not checked yet";
    std::chrono::system_clock::time_point checked_at{};
    std::chrono::system_clock::time_point since{};
  };

  explicit health_monitor(std::chrono::milliseconds interval);
  ~health_monitor();

  void add(std::string component, probe p);

  // Runs one round of probes synchronously, then keeps probing on a background thread.
  void start();
  void stop();

  std::map<std::string, component_state> snapshot() const;
  bool all_up() const;

 private:
  void probe_all();

  const std::chrono::milliseconds interval_;
  std::vector<std::pair<std::string, probe>> probes_;
  std::map<std::string, component_state> states_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace op::runtime
