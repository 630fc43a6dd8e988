#include "orders/app/place_order.hpp"

#include <chrono>
#include <ctime>

#include "orders/app/order_ids.hpp"

namespace op::orders {
namespace {
// The placement time, RFC 3339 in UTC, to the microsecond: the order list then puts orders
// placed within one millisecond in the order they came. createdAt shows milliseconds.
std::string utc_now() {
  auto now = std::chrono::system_clock::now();
  auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()) % 1'000'000;
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(micros.count()));
  return buf;
}
}  // namespace

place_order_result place_order(order_repository& orders, const order_presenter& presenter,
                               const order_limits& limits, order_draft draft,
                               const std::optional<idempotency>& key, std::string trace_id) {
  auto violations = check(draft, limits);
  if (!violations.empty())
    return {place_order_result::kind::invalid, std::move(violations), {}, {}};
  if (draft.payment_method.empty())
    draft.payment_method = std::string(default_payment_method);

  new_order order;
  order.order_id = new_order_id();
  order.trace_id = std::move(trace_id);
  order.created_at = utc_now();
  order.response_body = presenter.accepted_response(order.order_id);
  order.draft = std::move(draft);

  auto stored = orders.place(order, key);
  switch (stored.outcome) {
    case placement_result::kind::created:
      return {place_order_result::kind::accepted, {}, stored.order_id, stored.response_body};
    case placement_result::kind::replayed:
      return {place_order_result::kind::replayed, {}, stored.order_id, stored.response_body};
    case placement_result::kind::key_reused_with_other_body:
      break;
  }
  return {place_order_result::kind::idempotency_key_reused, {}, stored.order_id, {}};
}

}  // namespace op::orders
