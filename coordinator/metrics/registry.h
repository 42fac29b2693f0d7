// A small Prometheus registry: counters, gauges and fixed-bucket histograms with labels, rendered
// in the text exposition format 0.0.4 (what `GET /metrics` serves).
//
//   # HELP pagedllm:prompt_tokens_total Prompt tokens processed.
//   # TYPE pagedllm:prompt_tokens_total counter
//   pagedllm:prompt_tokens_total{model_name="llama"} 1027
//   # TYPE pagedllm:e2e_request_latency_seconds histogram
//   pagedllm:e2e_request_latency_seconds_bucket{model_name="llama",le="0.3"} 2
//   ...
//   pagedllm:e2e_request_latency_seconds_bucket{model_name="llama",le="+Inf"} 5
//   pagedllm:e2e_request_latency_seconds_sum{model_name="llama"} 3.25
//   pagedllm:e2e_request_latency_seconds_count{model_name="llama"} 5
//
// A family is a metric name with its help text and type; each Add* call adds one series (one
// set of label values) to its family, creating the family on first use. Families render in the
// order they were first added, series in the order they were added.
//
// Thread safety: Add* and Render take the registry's mutex. Updating a series (Increment, Set,
// Observe) takes no lock: a few relaxed atomic operations, so the engine's loop can update from
// its own thread while a scrape renders from another. A scrape may see an Observe half done
// (its bucket counted, its sum not yet added); _count is always the +Inf bucket's value.
//
// Registration mistakes (a bad name, a duplicate series, a family added with another type or
// other buckets) are bugs: they abort with a message naming the metric.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace pagedllm::coordinator {

// Label names and values of one series, in the order they render (e.g. {{"model_name", "m"}}).
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// The Content-Type of a response holding Render()'s output.
inline constexpr char kPrometheusContentType[] = "text/plain; version=0.0.4; charset=utf-8";

enum class MetricType { kCounter, kGauge, kHistogram };

// One series: its labels, and how it renders its sample lines.
class Metric {
 public:
  explicit Metric(MetricLabels labels) : labels_(std::move(labels)) {}
  virtual ~Metric() = default;
  Metric(const Metric&) = delete;
  Metric& operator=(const Metric&) = delete;

  const MetricLabels& labels() const { return labels_; }
  // Appends this series' sample lines for family `name` to `out`.
  virtual void AppendSamples(const std::string& name, std::string* out) const = 0;

 private:
  const MetricLabels labels_;
};

// A value that only goes up (a count of events, or of seconds spent). Its name ends in _total.
class Counter final : public Metric {
 public:
  using Metric::Metric;
  // by >= 0.
  void Increment(double by = 1.0);
  // For a counter that mirrors a cumulative count kept elsewhere (read at scrape time): raises
  // the value to `total`; a smaller total is ignored, so the counter never goes down.
  void IncrementTo(double total);
  double value() const { return value_.load(std::memory_order_relaxed); }
  void AppendSamples(const std::string& name, std::string* out) const override;

 private:
  std::atomic<double> value_{0.0};
};

// A value that goes up and down (a queue length, a usage fraction).
class Gauge final : public Metric {
 public:
  using Metric::Metric;
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }
  void AppendSamples(const std::string& name, std::string* out) const override;

 private:
  std::atomic<double> value_{0.0};
};

// Counts observations into buckets with fixed upper bounds (bucket i holds the observations
// v <= bounds[i] and > bounds[i - 1]; one more bucket, +Inf, holds the rest) and sums them.
// Renders cumulative _bucket{le="..."} lines, then _sum and _count.
class Histogram final : public Metric {
 public:
  // bounds: finite and strictly increasing (+Inf is implied).
  Histogram(MetricLabels labels, std::vector<double> bounds);
  void Observe(double value);

  const std::vector<double>& bounds() const { return bounds_; }
  // Observations so far in each bucket, not cumulative: [bounds().size() + 1], the last +Inf.
  std::vector<uint64_t> bucket_counts() const;
  uint64_t count() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  void AppendSamples(const std::string& name, std::string* out) const override;

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // [bounds_.size() + 1]
  std::atomic<double> sum_{0.0};
};

// Owns the families and their series; the pointers Add* returns live as long as the registry.
class MetricRegistry {
 public:
  MetricRegistry() = default;
  MetricRegistry(const MetricRegistry&) = delete;
  MetricRegistry& operator=(const MetricRegistry&) = delete;

  Counter* AddCounter(const std::string& name, const std::string& help, MetricLabels labels = {});
  Gauge* AddGauge(const std::string& name, const std::string& help, MetricLabels labels = {});
  Histogram* AddHistogram(const std::string& name, const std::string& help,
                          std::vector<double> bounds, MetricLabels labels = {});
  // Renders `source` (of this registry) again as family `name`: two names for one series of
  // observations, observed once (vLLM's time_per_output_token is its inter-token latency).
  void AddHistogramMirror(const std::string& name, const std::string& help,
                          const Histogram* source);

  // Every family in the text exposition format 0.0.4 (kPrometheusContentType).
  std::string Render() const;

 private:
  struct Family {
    std::string name;
    std::string help;
    MetricType type;
    std::vector<double> bounds;  // histograms: every series has the same
    std::vector<std::unique_ptr<Metric>> series;
  };
  // The family `name` (created if new; checked against `type` and `bounds` if not), ready to
  // take a series with `labels`.
  Family& FamilyFor(const std::string& name, const std::string& help, MetricType type,
                    const std::vector<double>& bounds, const MetricLabels& labels);

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Family>> families_;  // in order of first use
};

// Formatting shared with the tests: a sample value as Prometheus parses it ("+Inf", "-Inf",
// "NaN", integers without a fraction, else the shortest decimal that reads back the same).
std::string FormatMetricValue(double value);
// A label value with \, " and line feed escaped.
std::string EscapeLabelValue(const std::string& value);
// Help text with \ and line feed escaped.
std::string EscapeHelp(const std::string& help);
// [a-zA-Z_:][a-zA-Z0-9_:]*
bool IsValidMetricName(const std::string& name);
// [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved).
bool IsValidLabelName(const std::string& name);

}  // namespace pagedllm::coordinator
