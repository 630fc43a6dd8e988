-- Customers and products: the catalog the validation stage checks orders against.
-- Money is stored as integer minor units (cents); stock as three counters that always
-- add up to what was stocked: available + reserved + sold.

CREATE TABLE customers (
  customer_id  text PRIMARY KEY,
  email        text NOT NULL,
  name         text NOT NULL DEFAULT '',
  active       boolean NOT NULL DEFAULT true,
  updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE products (
  product_id   text PRIMARY KEY,
  name         text NOT NULL,
  price_cents  bigint NOT NULL CHECK (price_cents >= 0),
  active       boolean NOT NULL DEFAULT true,
  available    bigint NOT NULL DEFAULT 0 CHECK (available >= 0),
  reserved     bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
  sold         bigint NOT NULL DEFAULT 0 CHECK (sold >= 0),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
  order_id          text PRIMARY KEY,
  customer_id       text NOT NULL,
  customer_email    text,
  shipping_address  text,
  payment_method    text NOT NULL,
  total_cents       bigint NOT NULL CHECK (total_cents >= 0),
  status            text NOT NULL,
  cancel_reason     text,
  cancel_detail     text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_by_created ON orders (created_at DESC, order_id DESC);
CREATE INDEX orders_by_customer ON orders (customer_id, created_at DESC, order_id DESC);
CREATE INDEX orders_by_status ON orders (status, created_at DESC, order_id DESC);

CREATE TABLE order_items (
  order_id      text NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
  line_no       integer NOT NULL,
  product_id    text NOT NULL,
  product_name  text,
  quantity      integer NOT NULL CHECK (quantity > 0),
  price_cents   bigint NOT NULL CHECK (price_cents >= 0),
  PRIMARY KEY (order_id, line_no)
);

-- One row per status change of an order: GET /api/orders/{id}/events.
CREATE TABLE order_events (
  order_id  text NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
  seq       integer NOT NULL,
  status    text NOT NULL,
  reason    text,
  detail    text,
  at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (order_id, seq)
);

-- Idempotency-Key of POST /api/orders: the first answer, replayed for the same key.
CREATE TABLE idempotency_keys (
  idempotency_key  text PRIMARY KEY,
  request_hash     text NOT NULL,
  order_id         text NOT NULL,
  response_body    text NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- Transactional outbox: events written with the state change that caused them,
-- published to Kafka by the relay, which sets sent_at.
CREATE TABLE outbox (
  id              bigserial PRIMARY KEY,
  event_id        uuid NOT NULL UNIQUE,
  topic           text NOT NULL,
  message_key     text NOT NULL,
  event_type      text NOT NULL,
  correlation_id  text NOT NULL,
  payload         text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  sent_at         timestamptz
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;

-- The saga of each order: which step it is in and since when.
CREATE TABLE sagas (
  order_id         text PRIMARY KEY REFERENCES orders (order_id) ON DELETE CASCADE,
  state            text NOT NULL,
  step_started_at  timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  version          integer NOT NULL DEFAULT 0
);
CREATE INDEX sagas_by_state ON sagas (state, step_started_at);

-- Event ids each consumer has applied, written in the same transaction as the effect.
CREATE TABLE processed_events (
  consumer      text NOT NULL,
  event_id      uuid NOT NULL,
  processed_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, event_id)
);
