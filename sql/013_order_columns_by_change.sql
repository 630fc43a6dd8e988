-- The orders table again, with its columns in a new order: first those written once when the
-- order is placed, then those a saga step changes, history last. A HOT update logs the bytes
-- of the new row between the part that did not change at its start and the part that did not
-- change at its end. Grown by ALTER TABLE, the row had the placement's created_at, trace_id
-- and step_list between status and history, so every step logged them again: about 45 of the
-- 280 bytes of each step's update at 500 orders/s (bench/README.md).
--
-- A copy of the table: it takes as long as writing every order once, with the table locked.
ALTER TABLE orders RENAME TO orders_before_013;
ALTER INDEX orders_pkey RENAME TO orders_before_013_pkey;
DROP INDEX orders_by_created;
DROP INDEX orders_by_customer;

CREATE TABLE orders (
  -- Written when the order is placed.
  order_id          text PRIMARY KEY,
  customer_id       text NOT NULL,
  customer_email    text,
  shipping_address  text,
  payment_method    text NOT NULL,
  total_cents       bigint NOT NULL CHECK (total_cents >= 0),
  trace_id          text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  step_list         smallint NOT NULL DEFAULT 1,
  items             order_line[] NOT NULL DEFAULT '{}',
  -- Changed by the saga's steps.
  status            text NOT NULL,
  cancel_reason     text,
  cancel_detail     text,
  step_index        smallint NOT NULL DEFAULT 0,
  owed              text[] NOT NULL DEFAULT '{}',
  step_started_at   timestamptz NOT NULL DEFAULT now(),
  finished_at       timestamptz,
  updated_at        timestamptz NOT NULL DEFAULT now(),
  -- Newest entry first, and the last column (sql/010_history_in_order_row.sql).
  history           order_history_entry[] NOT NULL DEFAULT '{}'
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02,
        autovacuum_vacuum_cost_delay = 0, autovacuum_analyze_threshold = 200000);

INSERT INTO orders (order_id, customer_id, customer_email, shipping_address, payment_method,
                    total_cents, trace_id, created_at, step_list, items, status, cancel_reason,
                    cancel_detail, step_index, owed, step_started_at, finished_at, updated_at,
                    history)
  SELECT order_id, customer_id, customer_email, shipping_address, payment_method, total_cents,
         trace_id, created_at, step_list, items, status, cancel_reason, cancel_detail,
         step_index, owed, step_started_at, finished_at, updated_at, history
    FROM orders_before_013;

DROP TABLE orders_before_013;

-- No statement filters, joins or groups orders by their history or lines, but ANALYZE computed
-- statistics of their elements from every sampled row: 0.85 s of a 186,000-order table's
-- analyze, 0.37 s without them (bench/README.md). The planner needs none of them.
ALTER TABLE orders ALTER COLUMN history SET STATISTICS 0, ALTER COLUMN items SET STATISTICS 0;

CREATE INDEX orders_by_created ON orders (created_at DESC, order_id DESC);
CREATE INDEX orders_by_customer ON orders (customer_id, created_at DESC, order_id DESC);

-- The planner's statistics of the new table now rather than after 200,000 changed rows.
ANALYZE orders;
