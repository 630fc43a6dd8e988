#include "dashboard/dashboard_routes.hpp"

#include <string>

namespace op::dashboard {
namespace {

using http::status;
namespace beast_http = http::beast_http;

const embedded_file* find_file(std::string_view name) {
  for (const auto& file : embedded_dashboard())
    if (file.name == name)
      return &file;
  return nullptr;
}

const char* content_type_of(std::string_view name) {
  if (name.ends_with(".html"))
    return "text/html; charset=utf-8";
  if (name.ends_with(".css"))
    return "text/css; charset=utf-8";
  if (name.ends_with(".js"))
    return "text/javascript; charset=utf-8";
  return "application/octet-stream";
}

http::response file_response(const embedded_file& file) {
  http::response res{status::ok, 11};
  res.set(beast_http::field::content_type, content_type_of(file.name));
  // Small and changed with every build: revalidate each use.
  res.set(beast_http::field::cache_control, "no-cache");
  // Everything the page loads comes from this server; the admin token never leaves it
  // for another origin.
  res.set("Content-Security-Policy",
          "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
  res.set("X-Content-Type-Options", "nosniff");
  res.body().assign(file.content.data(), file.content.size());
  res.prepare_payload();
  return res;
}

}  // namespace

void add_dashboard_routes(http::router& routes, dashboard_feed& feed) {
  routes.add(http::verb::get, "/dashboard",
             [](http::request_context&) -> asio::awaitable<http::response> {
               co_return file_response(*find_file("index.html"));
             });

  routes.add(http::verb::get, "/dashboard/{file}",
             [](http::request_context& ctx) -> asio::awaitable<http::response> {
               const auto& name = ctx.path_params.at("file");
               const auto* file = find_file(name);
               if (!file)
                 co_return http::error_response(status::not_found, "not_found", "file",
                                                "no dashboard file named " + name);
               co_return file_response(*file);
             });

  routes.add_event_stream(
      "/dashboard/stream", [&feed](http::request_context&) -> asio::awaitable<http::stream_answer> {
        http::stream_answer answer;
        answer.source = feed.subscribe();
        if (!answer.source) {
          auto res = http::error_response(
              status::service_unavailable, "too_many_streams", std::nullopt,
              "this replica already serves app.dashboard.max-clients dashboard streams; retry "
              "later");
          res.set(beast_http::field::retry_after, "5");
          answer.refusal = std::move(res);
        }
        co_return answer;
      });
}

}  // namespace op::dashboard
