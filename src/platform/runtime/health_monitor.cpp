#include "platform/runtime/health_monitor.hpp"

#include "platform/log/logging.hpp"

namespace op::runtime {

health_monitor::health_monitor(std::chrono::milliseconds interval) : interval_(interval) {}

health_monitor::~health_monitor() {
  stop();
}

void health_monitor::add(std::string component, probe p) {
  std::lock_guard lock(mutex_);
  states_[component] = component_state{};
  probes_.emplace_back(std::move(component), std::move(p));
}

void health_monitor::add_informational(std::string component, reporter r) {
  std::lock_guard lock(mutex_);
  reporters_.emplace_back(std::move(component), std::move(r));
}

void health_monitor::start() {
  probe_all();
  thread_ = std::thread([this] {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      wake_.wait_for(lock, interval_, [this] { return stopping_; });
      if (stopping_)
        break;
      lock.unlock();
      probe_all();
      lock.lock();
    }
  });
}

void health_monitor::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

void health_monitor::probe_all() {
  auto logger = log::get("health");
  for (auto& [name, p] : probes_) {
    std::optional<std::string> failure;
    try {
      failure = p();
    } catch (const std::exception& e) {
      failure = e.what();
    }
    auto now = std::chrono::system_clock::now();
    std::lock_guard lock(mutex_);
    auto& state = states_[name];
    bool was_up = state.up;
    bool first = state.checked_at == std::chrono::system_clock::time_point{};
    state.up = !failure;
    state.reason = failure.value_or("");
    state.checked_at = now;
    if (first || was_up != state.up) {
      state.since = now;
      if (state.up)
        logger->info("{} is UP", name);
      else
        logger->warn("{} is DOWN: {}", name, state.reason);
    }
  }
}

std::map<std::string, health_monitor::component_state> health_monitor::snapshot() const {
  std::lock_guard lock(mutex_);
  return states_;
}

bool health_monitor::all_up() const {
  std::lock_guard lock(mutex_);
  for (const auto& [name, state] : states_)
    if (!state.up)
      return false;
  return true;
}

std::map<std::string, health_monitor::report> health_monitor::informational() const {
  decltype(reporters_) reporters;
  {
    std::lock_guard lock(mutex_);
    reporters = reporters_;
  }
  std::map<std::string, report> out;
  for (const auto& [name, read] : reporters) {
    try {
      out[name] = read();
    } catch (const std::exception& e) {
      out[name] = report{"UNKNOWN", {{"error", std::string(e.what())}}};
    }
  }
  return out;
}

}  // namespace op::runtime
