-- The W3C trace id each order carries through every stage and replica, and the traceparent
-- header the relay puts on each event.
ALTER TABLE orders ADD COLUMN trace_id text;
ALTER TABLE outbox ADD COLUMN traceparent text;
