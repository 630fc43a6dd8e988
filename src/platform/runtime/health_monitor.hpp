#pragma once
// Probes the components the server depends on (database, Kafka) on a background thread
// every interval and keeps their last state, so health endpoints answer at once and never
// hang on a dead dependency. Any thread may read snapshot().
//
// Informational components (a circuit breaker in front of the payment gateway) are shown
// beside them but never make the server DOWN or unready: it works on without them for a
// while. They are read when asked, so their reporter must be cheap and never block.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
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

  struct report {
    std::string status;  // "UP", or a state of the component's own such as "CIRCUIT_OPEN"
    std::map<std::string, std::variant<std::string, std::int64_t, std::vector<std::string>>>
        details;
  };
  using reporter = std::function<report()>;

  explicit health_monitor(std::chrono::milliseconds interval);
  ~health_monitor();

  void add(std::string component, probe p);
  void add_informational(std::string component, reporter r);

  // Runs one round of probes synchronously, then keeps probing on a background thread.
  void start();
  void stop();

  std::map<std::string, component_state> snapshot() const;
  // Probed components only: informational ones never count.
  bool all_up() const;
  // A reporter that throws reads as status "UNKNOWN" with the error.
  std::map<std::string, report> informational() const;

 private:
  void probe_all();

  const std::chrono::milliseconds interval_;
  std::vector<std::pair<std::string, probe>> probes_;
  std::map<std::string, component_state> states_;
  std::vector<std::pair<std::string, reporter>> reporters_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace op::runtime
