#pragma once
// What the orders use cases need from the outside world. Implemented by adapters
// (PostgreSQL); the calls block, so HTTP handlers run them on the blocking pool.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "orders/domain/order.hpp"

namespace op::orders {

struct order_view {
  std::string order_id;
  std::string customer_id;
  std::string customer_email;
  std::string shipping_address;
  std::string payment_method;
  std::string status;
  std::string cancel_reason;  // empty unless cancelled
  std::string cancel_detail;
  money total_amount;
  std::vector<order_item> items;
  std::string created_at;  // RFC 3339, UTC
  std::string updated_at;
};

struct order_event_view {
  int seq = 0;
  std::string status;
  std::string reason;
  std::string detail;
  std::string at;
};

struct status_count {
  std::string status;
  std::int64_t count = 0;
};

struct order_filter {
  std::optional<std::string> customer_id;
  std::optional<std::string> status;
  int limit = 50;
};

// An Idempotency-Key and a fingerprint of the request body it came with.
struct idempotency {
  std::string key;
  std::string request_hash;
};

struct new_order {
  std::string order_id;
  std::string trace_id;  // W3C trace id the order carries through every stage
  order_draft draft;
  std::string created_at;     // RFC 3339, UTC, to the microsecond (createdAt shows milliseconds)
  std::string response_body;  // what the client is answered, kept for replays
};

struct placement_result {
  enum class kind { created, replayed, key_reused_with_other_body } outcome;
  std::string order_id;
  std::string response_body;
};

class order_repository {
 public:
  virtual ~order_repository() = default;
  // In one transaction: the idempotency key (if any), the order, its items, its first history
  // entry, its saga and the OrderPlaced outbox event.
  virtual placement_result place(const new_order& order, const std::optional<idempotency>& key) = 0;
  virtual std::optional<order_view> find(const std::string& order_id) = 0;
  virtual std::optional<std::vector<order_event_view>> history(const std::string& order_id) = 0;
  virtual std::vector<order_view> list(const order_filter& filter) = 0;
  virtual std::vector<status_count> count_by_status() = 0;
};

// What POST /api/orders/{id}/cancel did. `cancelled`: the order is CANCELLED/CUSTOMER_CANCELLED
// and nothing was charged; `refunding`: the same, and a refund of a capture (or of a charge
// that may still be in flight) was requested, which the refund worker sends to the gateway.
// Both answer the same again on a repeated cancel. `conflict`: the order had already ended
// (CONFIRMED, FAILED or cancelled for another reason); `status` is where it stands.
struct cancellation {
  enum class kind { cancelled, refunding, conflict, not_found } outcome = kind::not_found;
  std::string status;
};

class order_cancellation {
 public:
  virtual ~order_cancellation() = default;
  // Decides the cancel under the saga row's lock in one transaction, so it is serialised with
  // the stage that works on the order at the same moment.
  virtual cancellation cancel(const std::string& order_id) = 0;
};

struct customer {
  std::string customer_id;
  std::string email;
  std::string name;
  bool active = true;
};

class customer_repository {
 public:
  virtual ~customer_repository() = default;
  virtual customer upsert(const customer& c) = 0;
  virtual std::optional<customer> find(const std::string& customer_id) = 0;
};

}  // namespace op::orders
