-- Statistics of the tables an order appends to are refreshed less often. An analyze samples
-- 30,000 rows whatever the table's size (0.1-0.2 s of CPU for orders); with the default
-- threshold (50 rows plus 10 % of the table) every table taking thousands of rows a second
-- qualified at each autovacuum_naptime (10 s): four analyzes every 10 s, each a dip of
-- 10-40 % in the completions of that second at 1,200 orders/s (bench/README.md). The hot
-- statements look rows up by key, whose estimates do not depend on how fresh the statistics
-- are; once a table is large, 200,000 more changed rows still means an analyze every 30 s or
-- so under that load.
ALTER TABLE orders SET (autovacuum_analyze_threshold = 200000);
ALTER TABLE order_items SET (autovacuum_analyze_threshold = 200000);
ALTER TABLE order_events SET (autovacuum_analyze_threshold = 200000);
ALTER TABLE payments SET (autovacuum_analyze_threshold = 200000);
