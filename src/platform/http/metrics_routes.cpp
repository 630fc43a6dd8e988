#include "platform/http/metrics_routes.hpp"

#include <fmt/format.h>

#include <set>

#include "platform/json/json_escape.hpp"

namespace op::http {

void add_metrics_routes(router& routes, const metrics::registry& registry,
                        std::function<std::vector<lag_sample>()> consumer_lag) {
  routes.add(verb::get, "/metrics", [&registry](request_context&) -> asio::awaitable<response> {
    auto res = text_response(status::ok, registry.expose());
    res.set(beast_http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    co_return res;
  });

  routes.add(verb::get, "/actuator/metrics", [](request_context&) -> asio::awaitable<response> {
    co_return json_response(status::ok, R"({"names":["kafka.consumer.lag"]})");
  });

  routes.add(
      verb::get, "/actuator/metrics/{name}",
      [consumer_lag](request_context& ctx) -> asio::awaitable<response> {
        if (ctx.path_params.at("name") != "kafka.consumer.lag")
          co_return error_response(status::not_found, "not_found", "name",
                                   "no metric named " + ctx.path_params.at("name"));
        std::string topic_filter, partition_filter;
        if (auto tag = ctx.query_param("tag")) {
          auto colon = tag->find(':');
          auto key = tag->substr(0, colon);
          auto value = colon == std::string::npos ? "" : tag->substr(colon + 1);
          if (key == "topic")
            topic_filter = value;
          else if (key == "partition")
            partition_filter = value;
          else
            co_return error_response(status::bad_request, "validation_failed", "tag",
                                     "tag must be topic:<name> or partition:<n>");
        }
        double total = 0;
        std::set<std::string> topics, partitions;
        for (const auto& s : consumer_lag()) {
          if (!topic_filter.empty() && s.topic != topic_filter)
            continue;
          if (!partition_filter.empty() && std::to_string(s.partition) != partition_filter)
            continue;
          total += s.lag;
          topics.insert(s.topic);
          partitions.insert(std::to_string(s.partition));
        }
        auto list = [](const std::set<std::string>& values) {
          std::string out = "[";
          for (const auto& v : values)
            out += (out.size() > 1 ? "," : "") + json::quoted(v);
          return out + "]";
        };
        co_return json_response(
            status::ok,
            fmt::format(
                R"({{"name":"kafka.consumer.lag","description":"Messages not yet consumed, per topic partition","baseUnit":"records","measurements":[{{"statistic":"VALUE","value":{}}}],"availableTags":[{{"tag":"topic","values":{}}},{{"tag":"partition","values":{}}}]}})",
                total, list(topics), list(partitions)));
      });
}

}  // namespace op::http
