#pragma once
// Catalog and stock administration (admin token required):
//   PUT /api/admin/products/{id}  {"name","price","stock","active"}  create or update
//   GET /api/admin/products/{id}
//   {"productId","name","price","active","available","reserved","sold"}

#include "inventory/app/ports.hpp"
#include "platform/http/router.hpp"

namespace op::inventory {

struct product_routes_context {
  product_repository& products;
  asio::thread_pool& blocking;
  std::string admin_token;
};

void add_product_routes(http::router& routes, const product_routes_context& context);

}  // namespace op::inventory
