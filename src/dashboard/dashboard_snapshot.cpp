#include "dashboard/dashboard_snapshot.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cmath>

namespace op::dashboard {

std::optional<double> quantile(const histogram_reading& earlier, const histogram_reading& later,
                               double q) {
  const auto& bounds = later.upper_bounds;
  if (later.cumulative.size() != bounds.size() + 1)
    return std::nullopt;
  bool has_earlier = earlier.cumulative.size() == later.cumulative.size();
  auto count = [&](std::size_t i) {
    auto before = has_earlier ? earlier.cumulative[i] : 0;
    return later.cumulative[i] >= before ? double(later.cumulative[i] - before) : 0.0;
  };
  double total = count(bounds.size());
  if (total <= 0)
    return std::nullopt;
  double rank = std::clamp(q, 0.0, 1.0) * total;
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (count(i) >= rank) {
      double lower = i == 0 ? 0.0 : bounds[i - 1];
      double below = i == 0 ? 0.0 : count(i - 1);
      double in_bucket = count(i) - below;
      if (in_bucket <= 0)
        return bounds[i];
      return lower + (bounds[i] - lower) * (rank - below) / in_bucket;
    }
  }
  // In the +Inf bucket: the highest finite bound is all a histogram can tell.
  return bounds.empty() ? std::nullopt : std::optional<double>(bounds.back());
}

void merge(histogram_reading& into, const histogram_reading& more) {
  if (more.cumulative.empty())
    return;
  if (into.cumulative.empty()) {
    into = more;
    return;
  }
  if (into.cumulative.size() != more.cumulative.size())
    return;  // different buckets cannot be added up
  for (std::size_t i = 0; i < into.cumulative.size(); ++i)
    into.cumulative[i] += more.cumulative[i];
}

namespace {

using writer_t = rapidjson::Writer<rapidjson::StringBuffer>;

void key(writer_t& w, std::string_view k) {
  w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
}

void string(writer_t& w, std::string_view v) {
  w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
}

// Rounded to 3 decimals (rates, seconds): the page shows no more, and the document stays small.
void number(writer_t& w, double v) {
  if (!std::isfinite(v)) {
    w.Null();
    return;
  }
  w.Double(std::round(v * 1000) / 1000);
}

void optional_number(writer_t& w, std::optional<double> v) {
  if (v)
    number(w, *v);
  else
    w.Null();
}

double per_second(double earlier, double later, double seconds) {
  if (seconds <= 0 || later < earlier)
    return 0;  // a counter only goes back when the process restarted
  return (later - earlier) / seconds;
}

void write_total(writer_t& w, std::int64_t cents) {
  // Exact money as a JSON number with two decimals, written from integer cents.
  bool negative = cents < 0;
  auto magnitude = negative ? -cents : cents;
  std::string text = (negative ? "-" : "") + std::to_string(magnitude / 100) + "." +
                     (magnitude % 100 < 10 ? "0" : "") + std::to_string(magnitude % 100);
  w.RawValue(text.data(), text.size(), rapidjson::kNumberType);
}

}  // namespace

std::string snapshot_json(const snapshot_inputs& in) {
  rapidjson::StringBuffer buffer;
  writer_t w(buffer);
  const auto& history = in.history;
  auto window_points = static_cast<std::size_t>(std::max<std::int64_t>(
      1, in.window_seconds * 1000 / std::max<std::int64_t>(1, in.interval_ms)));
  auto seconds_between = [](const metrics_reading& a, const metrics_reading& b) {
    return double(b.at_unix_ms - a.at_unix_ms) / 1000.0;
  };

  w.StartObject();
  key(w, "replica");
  string(w, in.replica);
  key(w, "generatedAt");
  w.Int64(history.empty() ? 0 : history.back().at_unix_ms);
  key(w, "intervalMs");
  w.Int64(in.interval_ms);
  key(w, "windowSeconds");
  w.Int(in.window_seconds);

  key(w, "thisReplica");
  w.StartObject();
  key(w, "outcomes");
  w.StartArray();
  for (std::size_t i = 1; i < history.size(); ++i) {
    const auto& previous = history[i - 1];
    const auto& now = history[i];
    const auto& window_start = history[i >= window_points ? i - window_points : 0];
    double dt = seconds_between(previous, now);
    w.StartObject();
    key(w, "at");
    w.Int64(now.at_unix_ms);
    key(w, "confirmed");
    number(w, per_second(previous.confirmed, now.confirmed, dt));
    key(w, "cancelled");
    number(w, per_second(previous.cancelled, now.cancelled, dt));
    key(w, "failed");
    number(w, per_second(previous.failed, now.failed, dt));
    for (auto [name, q] : {std::pair{"p50", 0.5}, std::pair{"p95", 0.95}, std::pair{"p99", 0.99}}) {
      key(w, name);
      optional_number(w, quantile(window_start.end_to_end, now.end_to_end, q));
    }
    w.EndObject();
  }
  w.EndArray();

  key(w, "stages");
  w.StartArray();
  for (std::size_t s = 0; s < stage_names.size(); ++s) {
    w.StartObject();
    key(w, "stage");
    string(w, stage_names[s]);
    if (!history.empty()) {
      const auto& now = history.back();
      const auto& start =
          history[history.size() > window_points ? history.size() - 1 - window_points : 0];
      key(w, "perSecond");
      number(w, per_second(start.stages[s].messages, now.stages[s].messages,
                           seconds_between(start, now)));
      key(w, "p50Seconds");
      optional_number(w, quantile(start.stages[s].duration, now.stages[s].duration, 0.5));
      key(w, "p99Seconds");
      optional_number(w, quantile(start.stages[s].duration, now.stages[s].duration, 0.99));
      key(w, "consumerLag");
      number(w, now.stages[s].consumer_lag);
    }
    w.EndObject();
  }
  w.EndArray();
  key(w, "circuitBreaker");
  string(w, history.empty() ? "CLOSED" : history.back().breaker_state);
  w.EndObject();

  key(w, "cluster");
  w.StartObject();
  if (!history.empty()) {
    const auto& now = history.back();
    key(w, "outboxBacklog");
    number(w, now.outbox_backlog);
    key(w, "outboxLagSeconds");
    number(w, now.outbox_lag_seconds);
    key(w, "retriesPending");
    number(w, now.retries_pending);
    key(w, "deadLetters");
    w.StartObject();
    key(w, "parked");
    number(w, now.dead_letters_parked);
    key(w, "queued");
    number(w, now.dead_letters_queued);
    key(w, "replayed");
    number(w, now.dead_letters_replayed);
    w.EndObject();
  }
  key(w, "newestOrders");
  if (in.newest_orders) {
    w.StartArray();
    for (const auto& o : *in.newest_orders) {
      w.StartObject();
      key(w, "orderId");
      string(w, o.order_id);
      key(w, "status");
      string(w, o.status);
      if (!o.reason.empty()) {
        key(w, "reason");
        string(w, o.reason);
      }
      key(w, "totalAmount");
      write_total(w, o.total_cents);
      key(w, "createdAt");
      string(w, o.created_at);
      key(w, "updatedAt");
      string(w, o.updated_at);
      w.EndObject();
    }
    w.EndArray();
  } else {
    w.Null();
    key(w, "databaseError");
    string(w, in.database_error);
  }
  w.EndObject();
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

}  // namespace op::dashboard
