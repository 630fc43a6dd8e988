-- The saga's state lives in its order's row. A saga and its order had the same status in two
-- rows, and every step updated both; the saga row's update could never be HOT, because the
-- deadline sweeper's index held its state and step start. At 500 orders/s the sagas table and
-- its two indexes were 1.9 KB of the 9.7 KB of WAL per order.
--
-- status, cancel_reason and cancel_detail were already the saga's state, reason and detail.
-- step_started_at: when the saga began waiting for its current step (the deadlines count from
-- it). finished_at: when the saga ended (CONFIRMED, CANCELLED or FAILED); NULL while it runs.
-- No index holds a column a step changes, so a step's update stays HOT; the sweeper finds the
-- running sagas through orders_running, whose entries change only when an order is placed and
-- when it ends.
ALTER TABLE orders
  ADD COLUMN step_list        smallint NOT NULL DEFAULT 1,
  ADD COLUMN step_index       smallint NOT NULL DEFAULT 0,
  ADD COLUMN owed             text[] NOT NULL DEFAULT '{}',
  ADD COLUMN step_started_at  timestamptz NOT NULL DEFAULT now(),
  ADD COLUMN finished_at      timestamptz;

UPDATE orders o SET step_list = s.step_list, step_index = s.step_index, owed = s.owed,
  step_started_at = s.step_started_at,
  finished_at = CASE WHEN s.state IN ('CONFIRMED', 'CANCELLED', 'FAILED') THEN s.updated_at END
  FROM sagas s WHERE s.order_id = o.order_id;

CREATE INDEX orders_running ON orders (created_at) WHERE finished_at IS NULL;

DROP TABLE sagas;
