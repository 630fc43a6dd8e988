-- What the saga state machine needs besides the status: why it ended and what compensation
-- still has to undo.
ALTER TABLE sagas
  ADD COLUMN reason            text,
  ADD COLUMN detail            text NOT NULL DEFAULT '',
  ADD COLUMN inventory_held    boolean NOT NULL DEFAULT false,
  ADD COLUMN payment_captured  boolean NOT NULL DEFAULT false;

-- One row per order that was charged: the pipeline's own ledger, reconciled against the
-- gateway. A refund is requested in the transaction that cancels the order (refund_state
-- 'PENDING') and carried out by the refund worker, which sets 'REFUNDED'.
CREATE TABLE payments (
  order_id       text PRIMARY KEY REFERENCES orders (order_id) ON DELETE CASCADE,
  charge_id      text NOT NULL,
  amount_cents   bigint NOT NULL CHECK (amount_cents >= 0),
  captured_at    timestamptz NOT NULL DEFAULT now(),
  refund_state   text,
  refunded_cents bigint NOT NULL DEFAULT 0,
  refunded_at    timestamptz
);
CREATE INDEX payments_refund_pending ON payments (order_id) WHERE refund_state = 'PENDING';
