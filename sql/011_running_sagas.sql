-- The running sagas are listed in a table of their own instead of the partial index
-- orders_running (created_at) WHERE finished_at IS NULL. With that index, the update that
-- ends a saga changed the index's predicate column, so it could never be HOT: it wrote the
-- whole row again and a new entry in every index of orders, about 560 bytes of WAL per order
-- at 500 orders/s (bench/README.md). A row here is inserted with its order and deleted by the
-- statement that ends its saga; the deadline sweeper reads the running orders through it.
-- finished_at stays in orders, set when the saga ends, and is no longer indexed.
--
-- created_at is the order's: the sweeper reads only orders placed longer ago than the
-- shortest deadline, and this table is small enough (the orders in flight) to be read whole.
CREATE TABLE running_sagas (
  order_id    text PRIMARY KEY,
  created_at  timestamptz NOT NULL
);

INSERT INTO running_sagas (order_id, created_at)
  SELECT order_id, created_at FROM orders WHERE finished_at IS NULL;

DROP INDEX orders_running;

-- Every row is deleted soon after its insert: vacuumed as the outbox is (sql/005_retention.sql).
ALTER TABLE running_sagas SET (autovacuum_vacuum_scale_factor = 0,
                               autovacuum_vacuum_threshold = 5000,
                               autovacuum_vacuum_cost_delay = 0);
