-- An order's lines live in its own row instead of one row each in order_items. They never
-- change after the order is placed, and every read of an order's lines reads its row too; a
-- row of their own cost a heap insert and a key entry (order_id, line_no) per line: 0.73 KB of
-- the 4.7 KB of WAL per order at 500 orders/s (bench/README.md).
--
-- items is the last column: a step's update changes history, ahead of it, and leaves the
-- lines in the unchanged end of the row, which a HOT update does not log again
-- (sql/010_history_in_order_row.sql).
CREATE TYPE order_line AS (
  product_id    text,
  product_name  text,
  quantity      integer,
  price_cents   bigint
);

ALTER TABLE orders ADD COLUMN items order_line[] NOT NULL DEFAULT '{}';

UPDATE orders o SET items = l.lines
  FROM (SELECT order_id,
               array_agg(ROW(product_id, product_name, quantity, price_cents)::order_line
                         ORDER BY line_no) AS lines
          FROM order_items GROUP BY order_id) l
 WHERE l.order_id = o.order_id;

DROP TABLE order_items;
