#include "orders/adapters/pg_order_repository.hpp"

#include <map>

#include "orders/adapters/order_event_payloads.hpp"
#include "orders/adapters/order_json.hpp"
#include "platform/log/trace_context.hpp"
#include "platform/outbox/after_commit_publisher.hpp"
#include "platform/outbox/outbox.hpp"
#include "platform/pg/array.hpp"

namespace op::orders {

std::string iso_timestamp_sql(const char* column) {
  std::string out = R"(to_char(%s AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))";
  out.replace(out.find("%s"), 2, column);
  return out;
}

std::string order_lines_join_sql(const char* orders_alias) {
  return std::string(" LEFT JOIN LATERAL unnest(") + orders_alias +
         ".items) WITH ORDINALITY AS i (product_id, product_name, quantity, price_cents,"
         " line_no) ON true";
}

const std::string order_select_list =
    "order_id, customer_id, coalesce(customer_email, ''), coalesce(shipping_address, ''),"
    " payment_method, status, coalesce(cancel_reason, ''), coalesce(cancel_detail, ''),"
    " total_cents, " +
    iso_timestamp_sql("created_at") + ", " + iso_timestamp_sql("updated_at");

order_view read_order_columns(const pqxx::row& r) {
  order_view o;
  o.order_id = r[0].as<std::string>();
  o.customer_id = r[1].as<std::string>();
  o.customer_email = r[2].as<std::string>();
  o.shipping_address = r[3].as<std::string>();
  o.payment_method = r[4].as<std::string>();
  o.status = r[5].as<std::string>();
  o.cancel_reason = r[6].as<std::string>();
  o.cancel_detail = r[7].as<std::string>();
  o.total_amount = money::from_cents(r[8].as<std::int64_t>());
  o.created_at = r[9].as<std::string>();
  o.updated_at = r[10].as<std::string>();
  return o;
}

order_item read_item_columns(const pqxx::row& r, int first) {
  return {r[first].as<std::string>(), r[first + 1].as<std::string>(),
          r[first + 2].as<std::int64_t>(), money::from_cents(r[first + 3].as<std::int64_t>())};
}

namespace {

order_item read_item(const pqxx::row& r) {
  return read_item_columns(r, 1);
}

// Items of several orders in one round trip.
void attach_items(pqxx::work& tx, std::vector<order_view>& orders) {
  if (orders.empty())
    return;
  std::string ids = "{";
  std::map<std::string, order_view*> by_id;
  for (auto& o : orders) {
    if (ids.size() > 1)
      ids += ',';
    ids += '"' + o.order_id + '"';  // our ids never contain quotes or backslashes
    by_id[o.order_id] = &o;
  }
  ids += '}';
  for (const auto& r : tx.exec_prepared("order_items_of", ids))
    by_id[r[0].as<std::string>()]->items.push_back(read_item(r));
}

}  // namespace

pg_order_repository::pg_order_repository(pg::connection_pool& pool, std::string order_placed_topic)
    : pool_(pool),
      order_placed_topic_(std::move(order_placed_topic)),
      // Up to 4 placement transactions at once leaves the pool's other connections to the
      // stages and the reads.
      placements_([this](const std::vector<placement_job*>& jobs) { place_all(jobs); }, 64, 4) {}

void pg_order_repository::prepare_statements(pqxx::connection& c) {
  c.prepare("idempotency_find",
            "SELECT request_hash, order_id, response_body FROM idempotency_keys"
            " WHERE idempotency_key = $1");
  // Orders (each row is also its saga, waiting for its first step), with their lines and
  // their first history entries, and their places among the running sagas in one round trip:
  // the orders' columns as parallel arrays, their lines flattened into parallel arrays naming
  // their order and line.
  c.prepare("order_insert_all",
            "WITH running AS (INSERT INTO running_sagas (order_id, created_at)"
            " SELECT * FROM unnest($1::text[], $15::timestamptz[])),"
            " lines AS (SELECT order_id, array_agg(ROW(product_id, NULLIF(product_name, ''),"
            " quantity, price_cents)::order_line ORDER BY line_no) AS items"
            " FROM unnest($8::text[], $9::int[], $10::text[], $11::text[], $12::int[],"
            " $13::bigint[]) AS i (order_id, line_no, product_id, product_name, quantity,"
            " price_cents) GROUP BY order_id)"
            " INSERT INTO orders (order_id, customer_id, customer_email,"
            " shipping_address, payment_method, total_cents, status, trace_id, created_at,"
            " updated_at, step_list, step_started_at, history, items) SELECT o.order_id,"
            " customer_id, NULLIF(email, ''), NULLIF(address, ''), method, total_cents, 'PLACED',"
            " NULLIF(trace_id, ''), created_at, created_at, $14, now(),"
            " ARRAY[ROW('PLACED', NULL, NULL, now())::order_history_entry],"
            " coalesce(l.items, '{}')"
            " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
            " $6::bigint[], $7::text[], $15::timestamptz[]) AS o (order_id, customer_id, email,"
            " address, method, total_cents, trace_id, created_at)"
            " LEFT JOIN lines l USING (order_id)");
  // A concurrent request with the same key waits on the row lock until the first commits,
  // then finds the key taken: it can never create a second order.
  c.prepare("idempotency_claim_all",
            "INSERT INTO idempotency_keys (idempotency_key, request_hash, order_id, response_body)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])"
            " ON CONFLICT (idempotency_key) DO NOTHING");
  // An order and its items in one round trip: one row per item, the order's columns repeated.
  c.prepare("order_with_items",
            "SELECT " + order_select_list +
                ", i.product_id, coalesce(i.product_name, ''), i.quantity, i.price_cents"
                " FROM orders o" +
                order_lines_join_sql("o") + " WHERE o.order_id = $1 ORDER BY i.line_no");
  c.prepare("order_items_of",
            "SELECT o.order_id, i.product_id, coalesce(i.product_name, ''), i.quantity,"
            " i.price_cents FROM orders o" +
                order_lines_join_sql("o") +
                " WHERE o.order_id = ANY($1::text[]) AND i.line_no IS NOT NULL"
                " ORDER BY o.order_id, i.line_no");
  // The row keeps its history newest first (sql/010_history_in_order_row.sql): the oldest
  // entry is the last element, seq 1.
  c.prepare("order_history",
            "SELECT cardinality(o.history) - h.n + 1 AS seq, h.status, coalesce(h.reason, ''),"
            " coalesce(h.detail, ''), " +
                iso_timestamp_sql("h.at") +
                " FROM orders o CROSS JOIN LATERAL unnest(o.history) WITH ORDINALITY"
                " AS h (status, reason, detail, at, n) WHERE o.order_id = $1 ORDER BY seq");
  c.prepare("order_exists", "SELECT 1 FROM orders WHERE order_id = $1");
  // One statement per index: a plan made once must not depend on whether a filter is given.
  c.prepare("order_list", "SELECT " + order_select_list +
                              " FROM orders WHERE ($1::text IS NULL OR status = $1)"
                              " ORDER BY created_at DESC, order_id DESC LIMIT $2");
  c.prepare("order_list_of_customer",
            "SELECT " + order_select_list +
                " FROM orders WHERE customer_id = $1 AND ($2::text IS NULL OR status = $2)"
                " ORDER BY created_at DESC, order_id DESC LIMIT $3");
  c.prepare("order_status_counts",
            "SELECT status, count(*) FROM orders GROUP BY status ORDER BY status");
  c.prepare("customer_upsert",
            "INSERT INTO customers (customer_id, email, name, active) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (customer_id) DO UPDATE SET email = EXCLUDED.email,"
            " name = EXCLUDED.name, active = EXCLUDED.active, updated_at = now()");
  c.prepare("customer_find",
            "SELECT customer_id, email, name, active FROM customers WHERE customer_id = $1");
  outbox::prepare_statements(c);
}

placement_result pg_order_repository::place(const new_order& order,
                                            const std::optional<idempotency>& key) {
  placement_job job{&order, &key, {}};
  placements_.run(job);
  return std::move(job.result);
}

namespace {
// Sent right after the commit, without an outbox row; stored (by reference: the relay renders
// the order as placed) only where no after-commit publisher sends it.
outbox::message placed_event(const std::string& topic, const new_order& order) {
  const auto& d = order.draft;
  // createdAt to the millisecond, as the row reads back: the last three digits before the Z.
  auto created_at = order.created_at;
  created_at.erase(created_at.size() - 4, 3);
  order_view placed{order.order_id,
                    d.customer_id,
                    d.customer_email,
                    d.shipping_address,
                    d.payment_method,
                    "PLACED",
                    {},
                    {},
                    d.total_amount,
                    d.items,
                    created_at,
                    created_at};
  return {topic,
          order.order_id,
          "OrderPlaced",
          order.order_id,
          order_json(placed),
          order.trace_id.empty() ? "" : log::make_traceparent(order.trace_id),
          {},
          std::nullopt,
          order_payload_reference(placed)};
}
}  // namespace

void pg_order_repository::place_all(const std::vector<placement_job*>& jobs) {
  pool_.with_connection([&](pqxx::connection& c) {
    std::vector<std::string_view> keys, hashes, keyed_orders, responses;
    std::vector<std::string_view> order_ids, customers, emails, addresses, methods, trace_ids,
        created_ats;
    std::vector<std::int64_t> totals;
    std::vector<std::string_view> item_orders, products, names;
    std::vector<std::int64_t> lines, quantities, prices;
    std::vector<outbox::message> events;
    for (const auto* job : jobs) {
      const auto& order = *job->order;
      const auto& d = order.draft;
      if (const auto& key = *job->key) {
        keys.push_back(key->key);
        hashes.push_back(key->request_hash);
        keyed_orders.push_back(order.order_id);
        responses.push_back(order.response_body);
      }
      order_ids.push_back(order.order_id);
      customers.push_back(d.customer_id);
      emails.push_back(d.customer_email);
      addresses.push_back(d.shipping_address);
      methods.push_back(d.payment_method);
      totals.push_back(d.total_amount.cents());
      trace_ids.push_back(order.trace_id);
      created_ats.push_back(order.created_at);
      for (std::size_t line = 0; line < d.items.size(); ++line) {
        const auto& item = d.items[line];
        item_orders.push_back(order.order_id);
        lines.push_back(static_cast<std::int64_t>(line + 1));
        products.push_back(item.product_id);
        names.push_back(item.product_name);
        quantities.push_back(item.quantity);
        prices.push_back(item.price.cents());
      }
      events.push_back(placed_event(order_placed_topic_, order));
    }
    auto insert_orders = [&](pqxx::transaction_base& t) {
      t.exec_prepared("order_insert_all", pg::text_array(order_ids), pg::text_array(customers),
                      pg::text_array(emails), pg::text_array(addresses), pg::text_array(methods),
                      pg::integer_array(totals), pg::text_array(trace_ids),
                      pg::text_array(item_orders), pg::integer_array(lines),
                      pg::text_array(products), pg::text_array(names),
                      pg::integer_array(quantities), pg::integer_array(prices), step_list_.load(),
                      pg::text_array(created_ats));
    };
    if (keys.empty() && publisher_) {
      // The orders' one statement needs no transaction block: it commits on its own or not at
      // all, and a placement saves the round trips of BEGIN and COMMIT.
      pqxx::nontransaction single(c);
      insert_orders(single);
    } else {
      pqxx::work tx(c);
      if (!keys.empty() &&
          tx.exec_prepared("idempotency_claim_all", pg::text_array(keys), pg::text_array(hashes),
                           pg::text_array(keyed_orders), pg::text_array(responses))
                  .affected_rows() != keys.size()) {
        // A key already used: in a batch, the batcher places each order alone; alone, the
        // order is answered with the first request's result, and nothing is written.
        if (jobs.size() > 1)
          throw std::runtime_error("an Idempotency-Key of the batch is taken");
        const auto& key = **jobs.front()->key;
        auto row = tx.exec_prepared1("idempotency_find", key.key);
        jobs.front()->result =
            row[0].as<std::string>() != key.request_hash
                ? placement_result{placement_result::kind::key_reused_with_other_body,
                                   row[1].as<std::string>(),
                                   {}}
                : placement_result{placement_result::kind::replayed, row[1].as<std::string>(),
                                   row[2].as<std::string>()};
        return;
      }
      insert_orders(tx);
      // With the after-commit publisher, the placed event has no outbox row: the order waits
      // for its first step, and the saga's republish_stalled sends it again if it is lost.
      if (!publisher_)
        outbox::append_all(tx, events);
      tx.commit();
    }
    if (publisher_)
      publisher_->publish_unstored(events);
    for (auto* job : jobs)
      job->result = {placement_result::kind::created, job->order->order_id,
                     job->order->response_body};
  });
}

std::optional<order_view> load_order(pqxx::work& tx, const std::string& order_id) {
  auto rows = tx.exec_prepared("order_with_items", order_id);
  if (rows.empty())
    return std::nullopt;
  auto order = read_order_columns(rows[0]);
  for (const auto& r : rows)
    if (!r[11].is_null())
      order.items.push_back(read_item_columns(r, 11));
  return order;
}

std::optional<order_view> pg_order_repository::find(const std::string& order_id) {
  return pool_.with_connection([&](pqxx::connection& c) -> std::optional<order_view> {
    pqxx::work tx(c);
    return load_order(tx, order_id);
  });
}

std::optional<std::vector<order_event_view>> pg_order_repository::history(
    const std::string& order_id) {
  return pool_.with_connection(
      [&](pqxx::connection& c) -> std::optional<std::vector<order_event_view>> {
        pqxx::work tx(c);
        auto rows = tx.exec_prepared("order_history", order_id);
        if (rows.empty() && tx.exec_prepared("order_exists", order_id).empty())
          return std::nullopt;
        std::vector<order_event_view> out;
        for (const auto& r : rows)
          out.push_back({r[0].as<int>(), r[1].as<std::string>(), r[2].as<std::string>(),
                         r[3].as<std::string>(), r[4].as<std::string>()});
        return out;
      });
}

std::vector<order_view> pg_order_repository::list(const order_filter& filter) {
  return pool_.with_connection([&](pqxx::connection& c) {
    pqxx::work tx(c);
    auto rows = filter.customer_id ? tx.exec_prepared("order_list_of_customer", filter.customer_id,
                                                      filter.status, filter.limit)
                                   : tx.exec_prepared("order_list", filter.status, filter.limit);
    std::vector<order_view> out;
    for (const auto& r : rows)
      out.push_back(read_order_columns(r));
    attach_items(tx, out);
    return out;
  });
}

std::vector<status_count> pg_order_repository::count_by_status() {
  return pool_.with_connection([&](pqxx::connection& c) {
    pqxx::work tx(c);
    std::vector<status_count> out;
    for (const auto& r : tx.exec_prepared("order_status_counts"))
      out.push_back({r[0].as<std::string>(), r[1].as<std::int64_t>()});
    return out;
  });
}

customer pg_customer_repository::upsert(const customer& cu) {
  return pool_.with_connection([&](pqxx::connection& c) {
    pqxx::work tx(c);
    tx.exec_prepared("customer_upsert", cu.customer_id, cu.email, cu.name, cu.active);
    tx.commit();
    return cu;
  });
}

std::optional<customer> pg_customer_repository::find(const std::string& customer_id) {
  return pool_.with_connection([&](pqxx::connection& c) -> std::optional<customer> {
    pqxx::work tx(c);
    auto rows = tx.exec_prepared("customer_find", customer_id);
    if (rows.empty())
      return std::nullopt;
    return customer{rows[0][0].as<std::string>(), rows[0][1].as<std::string>(),
                    rows[0][2].as<std::string>(), rows[0][3].as<bool>()};
  });
}

}  // namespace op::orders
