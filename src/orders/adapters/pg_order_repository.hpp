#pragma once
// PostgreSQL implementation of the orders ports. Thread-safe: every call borrows its own
// connection from the pool. Calls block; run them off the I/O threads.
//
// Placements are group-committed: orders placed while another placement's transaction runs
// are stored together in the next one, with one statement for all their rows.

#include <atomic>

#include "orders/app/ports.hpp"
#include "platform/pg/connection_pool.hpp"
#include "platform/runtime/batcher.hpp"

namespace op::outbox {
class after_commit_publisher;
}

namespace op::orders {

class pg_order_repository final : public order_repository {
 public:
  pg_order_repository(pg::connection_pool& pool, std::string order_placed_topic);
  // Publishes each placement's events right after its commit (else the relay does).
  void publish_after_commit_with(outbox::after_commit_publisher& publisher) {
    publisher_ = &publisher;
  }

  // Registers this repository's prepared statements; run on every new connection.
  static void prepare_statements(pqxx::connection& connection);

  placement_result place(const new_order& order, const std::optional<idempotency>& key) override;
  std::optional<order_view> find(const std::string& order_id) override;
  std::optional<std::vector<order_event_view>> history(const std::string& order_id) override;
  std::vector<order_view> list(const order_filter& filter) override;
  std::vector<status_count> count_by_status() override;

  // The saga step list (saga_step_lists.id) the sagas of new orders start with; set at start,
  // before the API accepts orders.
  void start_sagas_with(int step_list) { step_list_ = step_list; }

 private:
  struct placement_job {
    const new_order* order;
    const std::optional<idempotency>* key;
    placement_result result;
  };
  // One transaction for all of them; a batch with a key already used fails (and the
  // batcher places each alone, which answers the replay).
  void place_all(const std::vector<placement_job*>& jobs);

  pg::connection_pool& pool_;
  const std::string order_placed_topic_;
  outbox::after_commit_publisher* publisher_ = nullptr;
  std::atomic<int> step_list_{1};
  runtime::blocking_batcher<placement_job> placements_;
};

// The order with its items as seen inside `tx`; uses the statements prepare_statements made.
std::optional<order_view> load_order(pqxx::work& tx, const std::string& order_id);

// For statements that read an order together with something else: the order's columns as a
// select list (unqualified names of the orders table), and how to read them back from the
// first 11 columns of a row; an item from 4 columns starting at `first` (product id, name,
// quantity, price in cents), and the ISO 8601 UTC text of a timestamp column.
extern const std::string order_select_list;
order_view read_order_columns(const pqxx::row& r);
order_item read_item_columns(const pqxx::row& r, int first);
std::string iso_timestamp_sql(const char* column);
// A FROM clause's join that reads the lines kept in the row of the order `orders_alias`
// (sql/012_items_in_order_row.sql) as rows i (product_id, product_name, quantity,
// price_cents, line_no), line_no from 1; an order without lines still reads back, once.
std::string order_lines_join_sql(const char* orders_alias);

class pg_customer_repository final : public customer_repository {
 public:
  explicit pg_customer_repository(pg::connection_pool& pool) : pool_(pool) {}
  customer upsert(const customer& c) override;
  std::optional<customer> find(const std::string& customer_id) override;

 private:
  pg::connection_pool& pool_;
};

}  // namespace op::orders
