#pragma once
// Event handlers: a program built on the pipeline reacts to an order's outcome (confirmed,
// cancelled, failed) with code of its own, e.g. a notification or an analytics feed, without
// changing the pipeline.
//
// Guarantees, for each registered handler:
// - At least once: every outcome event the pipeline publishes reaches `handle` until a
//   transaction that handled it commits. The Kafka offset is committed only after that.
// - Once in effect: `handle` runs inside a PostgreSQL transaction the library opens; the
//   library inserts the claim processed_events(consumer = 'handler:<name>', event_id) in the
//   same transaction before calling `handle`. Once a transaction that handled an event
//   committed, a redelivery of that event (same event id: a rebalance, a restart, a replay
//   of the same message) is dropped without calling `handle` again. So write every effect
//   that must happen once through that transaction. An effect outside it (an e-mail, an HTTP
//   call) may happen again if the transaction fails after it; give it an idempotency key
//   (event_id) where the receiver accepts one.
// - Failure: an exception from `handle` rolls the transaction back (the claim with it); the
//   event is tried again in place with exponential backoff, a few times, while later events
//   of the same order wait. Then the message is dead-lettered (table dead_letters, stage
//   'handler:<name>', listed and replayed through the admin API like any dead letter) and
//   the handler goes on with the next event. A message that is not such an event is
//   dead-lettered at once. While PostgreSQL is unavailable the event waits, uncounted.
// - Order: events of one order arrive in order, one after another (one Kafka partition per
//   order id on each topic; an order ends once, so it has one outcome event, but a replayed
//   dead letter comes again later); events of different orders may be handled concurrently,
//   on several threads, so `handle` must be safe to call concurrently with itself.
// - Claims are kept for app.retention.event-claims-hours (48 by default), then purged with
//   the stages' claims: a redelivery older than that would be handled again.
//
// `handle` runs on a thread of the library's pool, never on an I/O thread; it may block
// (on the database, on a remote call), but every call holds a database connection.

#include <cstdint>
#include <functional>
#include <pqxx/transaction>
#include <set>
#include <string>
#include <vector>

#include "order_pipeline/order.hpp"

namespace order_pipeline {

// An order's final state. confirmed events come from orders.confirmed; cancelled and failed
// ones both from orders.failed.
enum class outcome { confirmed, cancelled, failed };

// What a handler receives: an outcome event as the pipeline publishes it.
struct order_event {
  std::string event_id;     // a UUID, the same on every redelivery of this event
  std::string event_type;   // "OrderConfirmed", "OrderFailed"
  std::string occurred_at;  // ISO-8601 UTC, when the outcome was written; may be empty
  std::string order_id;
  std::string customer_id;
  outcome result = outcome::confirmed;
  std::string status;  // "CONFIRMED", "CANCELLED" or "FAILED", as in the orders API
  // Why a cancelled or failed order stopped ("PAYMENT_DECLINED", ...) and in words; empty
  // for a confirmed order (and for a failed one that gave no reason).
  std::string reason;
  std::string detail;
  std::int64_t total_cents = 0;
  std::string total_amount;  // the total's decimal text: "59.98"
  std::vector<order_line> items;
  // The order as published (the event's "payload" object, numbers as they were written), for
  // any field not above: customerEmail, shippingAddress, createdAt, updatedAt, ...
  std::string payload_json;
};

struct event_handler {
  // [a-z][a-z0-9-]*, at most 64 characters, unique among the handlers of a program. It names
  // the handler's Kafka consumer group (<app consumer group>.handler.<name>) and its claims:
  // renaming a handler makes it start over from the oldest event Kafka still holds.
  std::string name;
  // The outcomes it is called for; others are skipped.
  std::set<outcome> outcomes;
  // Writes the handler's effects with `tx`, which the library commits after it returns; a
  // throw rolls back and retries (see above). Never call tx.commit() or tx.abort().
  std::function<void(pqxx::work& tx, const order_event& event)> handle;
};

}  // namespace order_pipeline
