-- Transient rows are purged by the retention job (app.retention.*), and queue-like tables are
-- vacuumed early, so table sizes stay bounded however long the server runs.

-- Event claims are deleted by age. Their rows arrive in processed_at order, so a BRIN index
-- finds the old ones while costing almost nothing per insert on the hot path.
CREATE INDEX processed_events_by_age ON processed_events USING brin (processed_at);

-- Replayed dead letters are deleted by the time of their replay.
CREATE INDEX dead_letters_replayed ON dead_letters (replayed_at) WHERE status = 'REPLAYED';

-- Every outbox and retry row is deleted soon after its insert, and every saga step updates its
-- order and saga rows: vacuum after a fixed number of dead rows, not after a share of the
-- table (20 % by default), and without cost-based pauses, so these tables stay small.
ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
                        autovacuum_vacuum_cost_delay = 0);
ALTER TABLE stage_retries SET (autovacuum_vacuum_scale_factor = 0,
                               autovacuum_vacuum_threshold = 1000);
ALTER TABLE orders SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE sagas SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE processed_events SET (autovacuum_vacuum_scale_factor = 0.02);
ALTER TABLE idempotency_keys SET (autovacuum_vacuum_scale_factor = 0.02);
