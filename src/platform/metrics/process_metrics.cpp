#include "platform/metrics/process_metrics.hpp"

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>

namespace op::metrics {
namespace {

// A "Name:   value kB" line of /proc/self/status, as a number (kB for memory lines).
double status_field(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0)
      return std::stod(line.substr(field.size() + 1));
  }
  return 0;
}

}  // namespace

void register_process_metrics(registry& r) {
  static const auto started = std::chrono::system_clock::now();
  static const auto started_steady = std::chrono::steady_clock::now();
  r.add_callback("process_resident_memory_bytes", "Resident memory size in bytes.", {},
                 [] { return status_field("VmRSS") * 1024; });
  r.add_callback("process_threads", "Number of OS threads in the process.", {},
                 [] { return status_field("Threads"); });
  r.add_callback("process_start_time_seconds", "Start time of the process since unix epoch.", {},
                 [] { return std::chrono::duration<double>(started.time_since_epoch()).count(); });
  r.add_callback("process_uptime_seconds", "Seconds since the process started.", {}, [] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_steady).count();
  });
}

}  // namespace op::metrics
