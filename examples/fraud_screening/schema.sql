-- The fraud-screening example's own tables, next to the product's (which its migrations
-- own). Created at every start with IF NOT EXISTS, in one transaction.

-- One row per order the screen passed; the screen's compensation sets released_at when a
-- later step (the payment) cancels the order, so the screening no longer vouches for it.
CREATE TABLE IF NOT EXISTS fraud_screenings (
  order_id     text PRIMARY KEY,
  customer_id  text NOT NULL,
  total_cents  bigint NOT NULL,
  screened_at  timestamptz NOT NULL DEFAULT now(),
  released_at  timestamptz
);

-- Customers whose orders the screen refuses, loaded by the risk team.
CREATE TABLE IF NOT EXISTS fraud_risk_list (
  customer_id  text PRIMARY KEY,
  note         text NOT NULL DEFAULT '',
  added_at     timestamptz NOT NULL DEFAULT now()
);

-- One row. An operator sets reloading while replacing the risk list; the screen waits
-- (retries later) meanwhile instead of screening against half a list.
CREATE TABLE IF NOT EXISTS fraud_risk_list_state (
  singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  reloading   boolean NOT NULL DEFAULT false,
  updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO fraud_risk_list_state (singleton) VALUES (true) ON CONFLICT DO NOTHING;

-- One notification per confirmed order, for the mailer to send. The library's claim drops a
-- redelivered event; the primary key is a second line of defence, and repeats_refused counts
-- what it caught (it should stay 0).
CREATE TABLE IF NOT EXISTS order_notifications (
  order_id         text PRIMARY KEY,
  event_id         uuid NOT NULL,
  customer_id      text NOT NULL,
  message          text NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  sent_at          timestamptz,
  repeats_refused  integer NOT NULL DEFAULT 0
);
