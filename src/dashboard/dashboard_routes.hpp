#pragma once
// The operator dashboard's routes:
//   GET /dashboard           the page (web/dashboard/index.html), built into the binary
//   GET /dashboard/{file}    its script and style
//   GET /dashboard/stream    server-sent events: a "snapshot" event per interval (see
//                            dashboard_feed); 503 with Retry-After past app.dashboard.max-clients
// The page reads orders, their history and the dead-letter queue through the public and
// admin APIs; the admin token an operator types stays in the page's memory.

#include <span>

#include "dashboard/dashboard_feed.hpp"
#include "platform/http/docs_routes.hpp"
#include "platform/http/router.hpp"

namespace op::dashboard {

using http::embedded_file;

// web/dashboard/*, embedded by cmake/embed_files.cmake.
std::span<const embedded_file> embedded_dashboard();

void add_dashboard_routes(http::router& routes, dashboard_feed& feed);

}  // namespace op::dashboard
