#include "platform/metrics/registry.hpp"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

namespace op::metrics {

histogram::histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)),
      counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {
  for (std::size_t i = 0; i <= bounds_.size(); ++i)
    counts_[i] = 0;
}

void histogram::observe(double value) {
  std::size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i])
    ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.inc(value);
}

std::vector<std::uint64_t> histogram::cumulative_counts() const {
  std::vector<std::uint64_t> out(bounds_.size() + 1);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    out[i] = running;
  }
  return out;
}

std::vector<double> latency_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

std::string render_labels(const labels& l) {
  if (l.empty())
    return {};
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : l) {
    if (!first)
      out += ',';
    first = false;
    out += k + "=\"";
    for (char c : v) {
      if (c == '\\')
        out += "\\\\";
      else if (c == '"')
        out += "\\\"";
      else if (c == '\n')
        out += "\\n";
      else
        out += c;
    }
    out += '"';
  }
  return out + "}";
}

registry::family& registry::family_for(const std::string& name, const std::string& help,
                                       kind type) {
  auto [it, inserted] = families_.try_emplace(name);
  if (inserted) {
    it->second.type = type;
    it->second.help = help;
  } else if (it->second.type != type) {
    throw std::logic_error("metric " + name + " registered with two types");
  }
  return it->second;
}

counter& registry::get_counter(const std::string& name, const std::string& help, const labels& l) {
  std::lock_guard lock(mutex_);
  auto& slot = family_for(name, help, kind::counter).counters[render_labels(l)];
  if (!slot)
    slot = std::make_unique<counter>();
  return *slot;
}

gauge& registry::get_gauge(const std::string& name, const std::string& help, const labels& l) {
  std::lock_guard lock(mutex_);
  auto& slot = family_for(name, help, kind::gauge).gauges[render_labels(l)];
  if (!slot)
    slot = std::make_unique<gauge>();
  return *slot;
}

histogram& registry::get_histogram(const std::string& name, const std::string& help,
                                   const labels& l, std::vector<double> buckets) {
  std::lock_guard lock(mutex_);
  auto& slot = family_for(name, help, kind::histogram).histograms[render_labels(l)];
  if (!slot)
    slot = std::make_unique<histogram>(std::move(buckets));
  return *slot;
}

void registry::add_callback(const std::string& name, const std::string& help, const labels& l,
                            std::function<double()> read) {
  std::lock_guard lock(mutex_);
  family_for(name, help, kind::gauge).callbacks[render_labels(l)] = std::move(read);
}

std::optional<double> registry::value(const std::string& name, const labels& l) const {
  std::lock_guard lock(mutex_);
  auto it = families_.find(name);
  if (it == families_.end())
    return std::nullopt;
  const auto& f = it->second;
  auto key = render_labels(l);
  if (auto c = f.counters.find(key); c != f.counters.end())
    return c->second->value();
  if (auto g = f.gauges.find(key); g != f.gauges.end())
    return g->second->value();
  if (auto cb = f.callbacks.find(key); cb != f.callbacks.end())
    return cb->second();
  return std::nullopt;
}

double registry::total(const std::string& name) const {
  std::lock_guard lock(mutex_);
  auto it = families_.find(name);
  if (it == families_.end())
    return 0;
  double sum = 0;
  for (const auto& [key, c] : it->second.counters)
    sum += c->value();
  for (const auto& [key, g] : it->second.gauges)
    sum += g->value();
  for (const auto& [key, read] : it->second.callbacks)
    sum += read();
  return sum;
}

std::optional<registry::histogram_counts> registry::histogram_value(const std::string& name,
                                                                    const labels& l) const {
  std::lock_guard lock(mutex_);
  auto it = families_.find(name);
  if (it == families_.end())
    return std::nullopt;
  auto h = it->second.histograms.find(render_labels(l));
  if (h == it->second.histograms.end())
    return std::nullopt;
  return histogram_counts{h->second->upper_bounds(), h->second->cumulative_counts()};
}

namespace {
std::string number(double v) {
  if (std::isinf(v))
    return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v))
    return "NaN";
  return fmt::format("{}", v);
}

// Inserts le="..." into a rendered label set.
std::string with_le(const std::string& rendered, const std::string& le) {
  if (rendered.empty())
    return "{le=\"" + le + "\"}";
  return rendered.substr(0, rendered.size() - 1) + ",le=\"" + le + "\"}";
}
}  // namespace

std::string registry::expose() const {
  std::lock_guard lock(mutex_);
  std::string out;
  out.reserve(16384);
  for (const auto& [name, f] : families_) {
    const char* type = f.type == kind::counter ? "counter"
                       : f.type == kind::gauge ? "gauge"
                                               : "histogram";
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, f.help, name, type);
    for (const auto& [l, c] : f.counters)
      out += name + l + " " + number(c->value()) + "\n";
    for (const auto& [l, g] : f.gauges)
      out += name + l + " " + number(g->value()) + "\n";
    for (const auto& [l, read] : f.callbacks)
      out += name + l + " " + number(read()) + "\n";
    for (const auto& [l, h] : f.histograms) {
      auto counts = h->cumulative_counts();
      for (std::size_t i = 0; i < h->upper_bounds().size(); ++i)
        out += name + "_bucket" + with_le(l, number(h->upper_bounds()[i])) + " " +
               std::to_string(counts[i]) + "\n";
      out += name + "_bucket" + with_le(l, "+Inf") + " " + std::to_string(counts.back()) + "\n";
      out += name + "_sum" + l + " " + number(h->sum()) + "\n";
      out += name + "_count" + l + " " + std::to_string(counts.back()) + "\n";
    }
  }
  return out;
}

registry& global() {
  static registry instance;
  return instance;
}

}  // namespace op::metrics
