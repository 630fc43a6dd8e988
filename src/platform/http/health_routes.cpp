#include "platform/http/health_routes.hpp"

#include <fmt/format.h>

#include <map>
#include <variant>

#include "platform/json/json_escape.hpp"

namespace op::http {
namespace {

std::string iso_time(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string detail_value(
    const std::variant<std::string, std::int64_t, std::vector<std::string>>& value) {
  if (const auto* text = std::get_if<std::string>(&value))
    return json::quoted(*text);
  if (const auto* list = std::get_if<std::vector<std::string>>(&value)) {
    std::string out = "[";
    for (const auto& item : *list)
      out += (out.size() > 1 ? "," : "") + json::quoted(item);
    return out + "]";
  }
  return std::to_string(std::get<std::int64_t>(value));
}

// Probed and informational components together, in name order.
std::string components_json(const runtime::health_monitor& monitor) {
  std::map<std::string, std::string> rendered;
  for (const auto& [name, state] : monitor.snapshot()) {
    std::string out =
        fmt::format(R"({{"status":"{}","details":{{"since":"{}","checkedAt":"{}")",
                    state.up ? "UP" : "DOWN", iso_time(state.since), iso_time(state.checked_at));
    if (!state.up)
      out += ",\"error\":" + json::quoted(state.reason);
    rendered[name] = out + "}}";
  }
  for (const auto& [name, report] : monitor.informational()) {
    std::string details;
    for (const auto& [key, value] : report.details)
      details += (details.empty() ? "" : ",") + json::quoted(key) + ":" + detail_value(value);
    rendered[name] =
        fmt::format(R"({{"status":{},"details":{{{}}}}})", json::quoted(report.status), details);
  }
  std::string out = "{";
  for (const auto& [name, json_object] : rendered)
    out += (out.size() > 1 ? "," : "") + json::quoted(name) + ":" + json_object;
  return out + "}";
}

}  // namespace

void add_health_routes(router& routes, const runtime::health_monitor& monitor, readiness_gate gate,
                       bool with_api) {
  if (with_api)
    routes.add(verb::get, "/api/orders/health", [](request_context&) -> asio::awaitable<response> {
      co_return text_response(status::ok, "Order Processing Service is healthy");
    });

  routes.add(verb::get, "/actuator/health",
             [&monitor, gate](request_context&) -> asio::awaitable<response> {
               bool up = monitor.all_up();
               auto blocker = gate();
               std::string body = fmt::format(
                   R"({{"status":"{}","components":{},"readiness":{{"status":"{}"{}}}}})",
                   up ? "UP" : "DOWN", components_json(monitor),
                   up && !blocker ? "UP" : "OUT_OF_SERVICE",
                   blocker ? ",\"reason\":" + json::quoted(*blocker) : "");
               co_return json_response(up ? status::ok : status::service_unavailable, body);
             });

  routes.add(verb::get, "/actuator/health/liveness",
             [](request_context&) -> asio::awaitable<response> {
               co_return json_response(status::ok, R"({"status":"UP"})");
             });

  routes.add(verb::get, "/actuator/health/readiness",
             [&monitor, gate](request_context&) -> asio::awaitable<response> {
               auto blocker = gate();
               if (!blocker && !monitor.all_up())
                 blocker = "a dependency is DOWN";
               if (!blocker)
                 co_return json_response(status::ok, R"({"status":"UP"})");
               co_return json_response(
                   status::service_unavailable,
                   fmt::format(R"({{"status":"OUT_OF_SERVICE","reason":{},"components":{}}})",
                               json::quoted(*blocker), components_json(monitor)));
             });
}

}  // namespace op::http
