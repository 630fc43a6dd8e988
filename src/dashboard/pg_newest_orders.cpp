#include "dashboard/pg_newest_orders.hpp"

namespace op::dashboard {

std::vector<order_row> newest_orders(pg::connection_pool& pool, int limit) {
  return pool.with_connection([limit](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    auto rows = tx.exec_params(
        R"(SELECT order_id, status, coalesce(cancel_reason, ''), total_cents,
                  to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                  to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
           FROM orders ORDER BY created_at DESC, order_id DESC LIMIT $1)",
        limit);
    std::vector<order_row> out;
    out.reserve(rows.size());
    for (const auto& r : rows)
      out.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(),
                     r[3].as<std::int64_t>(), r[4].as<std::string>(), r[5].as<std::string>()});
    return out;
  });
}

}  // namespace op::dashboard
