-- Fault tolerance: retries that survive a restart, the dead-letter queue operators inspect and
-- replay, and outbox rows that carry a message verbatim (a dead letter, a replay).

-- A stage's message whose step failed transiently (e.g. the payment gateway timed out) and will
-- be run again at due_at by the retry scheduler of whichever replica gets to it first. The
-- Kafka offset has moved on; this row is what remembers the retry.
CREATE TABLE stage_retries (
  id                bigserial PRIMARY KEY,
  stage             text NOT NULL,
  order_id          text NOT NULL,
  topic             text NOT NULL,
  partition         integer NOT NULL,
  "offset"          bigint NOT NULL,
  message_key       text NOT NULL,
  payload           bytea NOT NULL,
  headers           jsonb NOT NULL DEFAULT '{}',
  attempts          integer NOT NULL,          -- failed attempts so far
  error_class       text NOT NULL,
  last_error        text NOT NULL,
  first_failure_at  timestamptz NOT NULL DEFAULT now(),
  last_failure_at   timestamptz NOT NULL DEFAULT now(),
  due_at            timestamptz NOT NULL,
  UNIQUE (stage, order_id)
);
CREATE INDEX stage_retries_due ON stage_retries (due_at);

-- Messages a stage gave up on: undecodable, permanently failing, or out of retries. Each is
-- also published to dlq.orders. status: PARKED (waiting for an operator), QUEUED (bulk replay
-- pending), REPLAYED (re-injected into its original topic).
CREATE TABLE dead_letters (
  id                bigserial PRIMARY KEY,
  stage             text NOT NULL,
  order_id          text,
  topic             text NOT NULL,
  partition         integer NOT NULL,
  "offset"          bigint NOT NULL,
  message_key       text NOT NULL DEFAULT '',
  payload           bytea NOT NULL,
  headers           jsonb NOT NULL DEFAULT '{}',
  error_class       text NOT NULL,             -- undecodable, permanent, retries_exhausted
  error_message     text NOT NULL,
  attempts          integer NOT NULL,
  first_failure_at  timestamptz NOT NULL,
  last_failure_at   timestamptz NOT NULL,
  status            text NOT NULL DEFAULT 'PARKED',
  replay_count      integer NOT NULL DEFAULT 0,
  replayed_at       timestamptz,
  created_at        timestamptz NOT NULL DEFAULT now(),
  UNIQUE (stage, topic, partition, "offset")
);
CREATE INDEX dead_letters_by_stage ON dead_letters (stage, id);
CREATE INDEX dead_letters_by_order ON dead_letters (order_id);
CREATE INDEX dead_letters_queued ON dead_letters (id) WHERE status = 'QUEUED';

-- raw_payload: publish these bytes as the message value instead of the event envelope.
-- headers: further Kafka headers, as a JSON object of strings.
ALTER TABLE outbox
  ADD COLUMN raw_payload bytea,
  ADD COLUMN headers jsonb;

-- A refund that found nothing to refund is checked again a few times (refund_checks,
-- next_refund_at): a charge that timed out on our side may still land at the gateway.
ALTER TABLE payments
  ADD COLUMN refund_checks   integer NOT NULL DEFAULT 0,
  ADD COLUMN next_refund_at  timestamptz NOT NULL DEFAULT now();
