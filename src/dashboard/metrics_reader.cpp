#include "dashboard/metrics_reader.hpp"

#include <string>

namespace op::dashboard {
namespace {

// Outcomes of pipeline_messages_total: every message a stage handled counts once.
constexpr const char* message_outcomes[] = {
    "applied", "duplicate", "rejected", "skipped", "retry_scheduled", "dead_lettered", "failed"};

histogram_reading histogram_of(const metrics::registry& r, const std::string& name,
                               const metrics::labels& l) {
  auto h = r.histogram_value(name, l);
  if (!h)
    return {};
  return {std::move(h->upper_bounds), std::move(h->cumulative)};
}

}  // namespace

metrics_reading read_metrics(const metrics::registry& r,
                             const std::array<double, stage_names.size()>& consumer_lag,
                             std::int64_t now_unix_ms) {
  metrics_reading m;
  m.at_unix_ms = now_unix_ms;
  m.confirmed = r.total("orders_confirmed_total");
  m.cancelled = r.total("orders_cancelled_total");
  m.failed = r.total("orders_failed_total");
  for (const char* status : {"CONFIRMED", "CANCELLED", "FAILED"})
    merge(m.end_to_end, histogram_of(r, "order_end_to_end_seconds", {{"status", status}}));
  for (std::size_t s = 0; s < stage_names.size(); ++s) {
    std::string stage(stage_names[s]);
    auto& out = m.stages[s];
    for (const char* outcome : message_outcomes)
      out.messages +=
          r.value("pipeline_messages_total", {{"stage", stage}, {"outcome", outcome}}).value_or(0);
    out.duration = histogram_of(r, "pipeline_stage_duration_seconds", {{"stage", stage}});
    out.consumer_lag = consumer_lag[s];
  }
  auto breaker = [&](const char* state) {
    return r.value("circuit_breaker_state", {{"name", "payment_gateway"}, {"state", state}})
               .value_or(0) > 0.5;
  };
  m.breaker_state = breaker("open") ? "OPEN" : breaker("half_open") ? "HALF_OPEN" : "CLOSED";
  m.outbox_backlog = r.value("outbox_backlog_events").value_or(0);
  m.outbox_lag_seconds = r.value("outbox_relay_lag_seconds").value_or(0);
  m.retries_pending = r.value("pipeline_retries_pending").value_or(0);
  m.dead_letters_parked = r.value("dlq_entries", {{"status", "PARKED"}}).value_or(0);
  m.dead_letters_queued = r.value("dlq_entries", {{"status", "QUEUED"}}).value_or(0);
  m.dead_letters_replayed = r.value("dlq_entries", {{"status", "REPLAYED"}}).value_or(0);
  return m;
}

}  // namespace op::dashboard
