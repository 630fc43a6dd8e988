#include "platform/http/docs_routes.hpp"

#include <string>

namespace op::http {
namespace {

// The document and the page change with every build and are small: revalidate each use.
// Swagger UI's own files change only with its pinned version: keep them a day.
constexpr const char* revalidate = "no-cache";
constexpr const char* keep_a_day = "public, max-age=86400";

const char* content_type_of(std::string_view name) {
  auto ends_with = [name](std::string_view suffix) { return name.ends_with(suffix); };
  if (ends_with(".yaml"))
    return "application/yaml";
  if (ends_with(".html"))
    return "text/html; charset=utf-8";
  if (ends_with(".css"))
    return "text/css; charset=utf-8";
  if (ends_with(".js"))
    return "text/javascript; charset=utf-8";
  if (ends_with(".png"))
    return "image/png";
  return "application/octet-stream";
}

const embedded_file* find_file(std::string_view name) {
  for (const auto& file : embedded_docs())
    if (file.name == name)
      return &file;
  return nullptr;
}

response file_response(const embedded_file& file, const char* cache_control) {
  response res{status::ok, 11};
  res.set(beast_http::field::content_type, content_type_of(file.name));
  res.set(beast_http::field::cache_control, cache_control);
  res.body().assign(file.content.data(), file.content.size());
  res.prepare_payload();
  return res;
}

}  // namespace

void add_docs_routes(router& routes) {
  routes.add(verb::get, "/openapi.yaml", [](request_context&) -> asio::awaitable<response> {
    co_return file_response(*find_file("openapi.yaml"), revalidate);
  });

  routes.add(verb::get, "/swagger-ui/", [](request_context&) -> asio::awaitable<response> {
    co_return file_response(*find_file("swagger-ui/index.html"), revalidate);
  });

  routes.add(verb::get, "/swagger-ui/{file}",
             [](request_context& ctx) -> asio::awaitable<response> {
               const auto& name = ctx.path_params.at("file");
               const auto* file = find_file("swagger-ui/" + name);
               if (!file)
                 co_return error_response(status::not_found, "not_found", "file",
                                          "no documentation file named " + name);
               co_return file_response(*file, name == "index.html" ? revalidate : keep_a_day);
             });
}

}  // namespace op::http
