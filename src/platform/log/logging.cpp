#include "platform/log/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <chrono>
#include <ctime>
#include <mutex>

#include "platform/json/json_escape.hpp"
#include "platform/log/trace_context.hpp"

namespace op::log {
namespace {

std::string_view level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "TRACE";
    case spdlog::level::debug:
      return "DEBUG";
    case spdlog::level::info:
      return "INFO";
    case spdlog::level::warn:
      return "WARN";
    case spdlog::level::err:
      return "ERROR";
    case spdlog::level::critical:
      return "FATAL";
    default:
      return "OFF";
  }
}

// Renders {"time","level","logger","message"} with RFC 3339 UTC times.
class json_formatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    using namespace std::chrono;
    auto since_epoch = msg.time.time_since_epoch();
    auto secs = duration_cast<seconds>(since_epoch);
    auto millis = duration_cast<milliseconds>(since_epoch - secs).count();
    std::time_t t = secs.count();
    std::tm tm{};
    gmtime_r(&t, &tm);
    char stamp[64];
    std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(millis));
    std::string line;
    line.reserve(128 + msg.payload.size());
    line += R"({"time":")";
    line += stamp;
    line += R"(","level":")";
    line += level_name(msg.level);
    line += R"(","logger":")";
    json::append_escaped(std::string_view(msg.logger_name.data(), msg.logger_name.size()), line);
    const auto& ctx = current_context();
    if (!ctx.order_id.empty()) {
      line += R"(","orderId":")";
      json::append_escaped(ctx.order_id, line);
    }
    if (!ctx.trace_id.empty()) {
      line += R"(","traceId":")";
      line += ctx.trace_id;
    }
    line += R"(","message":")";
    json::append_escaped(std::string_view(msg.payload.data(), msg.payload.size()), line);
    line += "\"}\n";
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<json_formatter>();
  }
};

std::mutex registry_mutex;
settings current;
spdlog::sink_ptr shared_sink;

spdlog::level::level_enum level_for(std::string_view module) {
  auto it = current.levels.find(std::string(module));
  return spdlog::level::from_str(it != current.levels.end() ? it->second : current.root_level);
}

}  // namespace

void init(const settings& s) {
  std::lock_guard lock(registry_mutex);
  current = s;
  if (!shared_sink) {
    shared_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    shared_sink->set_formatter(std::make_unique<json_formatter>());
  }
  spdlog::apply_all(
      [](const std::shared_ptr<spdlog::logger>& l) { l->set_level(level_for(l->name())); });
}

std::shared_ptr<spdlog::logger> get(std::string_view module) {
  std::lock_guard lock(registry_mutex);
  if (auto existing = spdlog::get(std::string(module)))
    return existing;
  if (!shared_sink) {
    shared_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    shared_sink->set_formatter(std::make_unique<json_formatter>());
  }
  auto logger = std::make_shared<spdlog::logger>(std::string(module), shared_sink);
  logger->set_level(level_for(module));
  logger->flush_on(spdlog::level::info);
  spdlog::register_logger(logger);
  return logger;
}

}  // namespace op::log
