#pragma once
// Prometheus metrics: counters, gauges and histograms in labelled families, rendered in the
// text exposition format for GET /metrics. Any thread may update a metric; the references
// the registry hands out stay valid for the process lifetime, so hot paths look a metric up
// once and keep the reference. Label values must come from bounded sets (route patterns,
// stages, reasons), never from order ids.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace op::metrics {

using labels = std::map<std::string, std::string>;

class counter {
 public:
  void inc(double by = 1) {
    double old = value_.load(std::memory_order_relaxed);
    while (!value_.compare_exchange_weak(old, old + by, std::memory_order_relaxed)) {
    }
  }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double by) {
    double old = value_.load(std::memory_order_relaxed);
    while (!value_.compare_exchange_weak(old, old + by, std::memory_order_relaxed)) {
    }
  }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class histogram {
 public:
  explicit histogram(std::vector<double> upper_bounds);
  void observe(double value);

  const std::vector<double>& upper_bounds() const { return bounds_; }
  // Cumulative counts per bucket (the last is +Inf), the sum and the count.
  std::vector<std::uint64_t> cumulative_counts() const;
  double sum() const { return sum_.value(); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // per bucket, +Inf last
  counter sum_;
};

// Latency buckets in seconds, 0.5 ms to 10 s.
std::vector<double> latency_buckets();

class registry {
 public:
  counter& get_counter(const std::string& name, const std::string& help, const labels& l = {});
  gauge& get_gauge(const std::string& name, const std::string& help, const labels& l = {});
  histogram& get_histogram(const std::string& name, const std::string& help, const labels& l = {},
                           std::vector<double> buckets = latency_buckets());
  // A gauge whose value is read when scraped (pool sizes, backlog, memory).
  void add_callback(const std::string& name, const std::string& help, const labels& l,
                    std::function<double()> read);

  // The text exposition format, version 0.0.4.
  std::string expose() const;

  // In-process readers (the operator dashboard), instead of parsing expose(): the value of
  // one counter or gauge series, the sum of every series of a family, and a histogram series'
  // cumulative bucket counts (nullopt or 0 while nothing registered it). Read-only; they take
  // the registry's lock once.
  std::optional<double> value(const std::string& name, const labels& l = {}) const;
  double total(const std::string& name) const;
  struct histogram_counts {
    std::vector<double> upper_bounds;
    std::vector<std::uint64_t> cumulative;  // per bucket, +Inf last
  };
  std::optional<histogram_counts> histogram_value(const std::string& name,
                                                  const labels& l = {}) const;

 private:
  enum class kind { counter, gauge, histogram };
  struct family {
    kind type;
    std::string help;
    std::map<std::string, std::unique_ptr<counter>> counters;  // key: rendered labels
    std::map<std::string, std::unique_ptr<gauge>> gauges;
    std::map<std::string, std::unique_ptr<histogram>> histograms;
    std::map<std::string, std::function<double()>> callbacks;
  };
  family& family_for(const std::string& name, const std::string& help, kind type);

  mutable std::mutex mutex_;
  std::map<std::string, family> families_;
};

// The process-wide registry.
registry& global();

// {a="x",b="y"}, escaped; empty string for no labels.
std::string render_labels(const labels& l);

}  // namespace op::metrics
