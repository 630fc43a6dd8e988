#pragma once
// The dashboard's one database read per interval: the newest orders, from the index
// orders_by_created (created_at DESC, order_id DESC), so it reads `limit` index entries and
// rows whatever the table's size. Cluster-wide: every replica writes the same table.

#include <vector>

#include "dashboard/dashboard_snapshot.hpp"
#include "platform/pg/connection_pool.hpp"

namespace op::dashboard {

// Newest first. Throws what libpqxx throws when the database cannot be read.
std::vector<order_row> newest_orders(pg::connection_pool& pool, int limit);

}  // namespace op::dashboard
