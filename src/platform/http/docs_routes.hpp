#pragma once
// The API's own documentation, built into the binary at build time (nothing is fetched at
// run time):
//   GET /openapi.yaml           api/openapi.yaml, the OpenAPI document of every route
//   GET /swagger-ui/            Swagger UI's page of that document (api/swagger-ui/index.html)
//   GET /swagger-ui/{file}      the page's script, style and icons, from npm's
//                               swagger-ui-dist as pinned in tools/api/package-lock.json

#include <span>
#include <string_view>

#include "platform/http/router.hpp"

namespace op::http {

// A file carried in the binary; cmake/embed_files.cmake generates the table.
struct embedded_file {
  std::string_view name;  // "openapi.yaml" or "swagger-ui/<file>"
  std::string_view content;
};

std::span<const embedded_file> embedded_docs();

void add_docs_routes(router& routes);

}  // namespace op::http
