#include "coordinator/metrics/registry.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace pagedllm::coordinator {
namespace {

void AtomicAdd(std::atomic<double>& target, double by) {
  double old = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(old, old + by, std::memory_order_relaxed)) {
  }
}

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// `{a="x",b="y"}` with `extra` (e.g. le) last; nothing when there is no label at all.
void AppendLabels(const MetricLabels& labels, const std::pair<const char*, std::string>* extra,
                  std::string* out) {
  if (labels.empty() && extra == nullptr) return;
  out->push_back('{');
  bool first = true;
  for (const auto& [name, value] : labels) {
    absl::StrAppend(out, first ? "" : ",", name, "=\"", EscapeLabelValue(value), "\"");
    first = false;
  }
  if (extra != nullptr) {
    absl::StrAppend(out, first ? "" : ",", extra->first, "=\"", extra->second, "\"");
  }
  out->push_back('}');
}

void AppendSample(const std::string& name, const char* suffix, const MetricLabels& labels,
                  const std::pair<const char*, std::string>* extra, const std::string& value,
                  std::string* out) {
  absl::StrAppend(out, name, suffix);
  AppendLabels(labels, extra, out);
  absl::StrAppend(out, " ", value, "\n");
}

bool IsNameChar(char c, bool first, bool colon_allowed) {
  const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  return letter || (colon_allowed && c == ':') || (!first && c >= '0' && c <= '9');
}

bool IsValidName(const std::string& name, bool colon_allowed) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (!IsNameChar(name[i], i == 0, colon_allowed)) return false;
  }
  return true;
}

bool EndsWith(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::string FormatMetricValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == 0.0) return "0";  // also -0
  char buffer[40];
  if (value == std::trunc(value) && std::fabs(value) < 1e15) {
    std::snprintf(buffer, sizeof(buffer), "%.0f", value);
    return buffer;
  }
  // The fewest significant digits that read back as the same double (at most 17).
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof(buffer), "%.*g", precision, value);
    if (std::strtod(buffer, nullptr) == value) break;
  }
  return buffer;
}

std::string EscapeLabelValue(const std::string& value) {
  std::string escaped;
  escaped.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      escaped += "\\\\";
    } else if (c == '"') {
      escaped += "\\\"";
    } else if (c == '\n') {
      escaped += "\\n";
    } else {
      escaped.push_back(c);
    }
  }
  return escaped;
}

std::string EscapeHelp(const std::string& help) {
  std::string escaped;
  escaped.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      escaped += "\\\\";
    } else if (c == '\n') {
      escaped += "\\n";
    } else {
      escaped.push_back(c);
    }
  }
  return escaped;
}

bool IsValidMetricName(const std::string& name) { return IsValidName(name, true); }

bool IsValidLabelName(const std::string& name) {
  return IsValidName(name, false) && name.rfind("__", 0) != 0;
}

void Counter::Increment(double by) {
  PAGEDLLM_CHECK(by >= 0.0, "a counter only goes up, got an increment of ", by);
  AtomicAdd(value_, by);
}

void Counter::IncrementTo(double total) {
  double old = value_.load(std::memory_order_relaxed);
  while (total > old && !value_.compare_exchange_weak(old, total, std::memory_order_relaxed)) {
  }
}

void Counter::AppendSamples(const std::string& name, std::string* out) const {
  AppendSample(name, "", labels(), nullptr, FormatMetricValue(value()), out);
}

void Gauge::AppendSamples(const std::string& name, std::string* out) const {
  AppendSample(name, "", labels(), nullptr, FormatMetricValue(value()), out);
}

Histogram::Histogram(MetricLabels labels, std::vector<double> bounds)
    : Metric(std::move(labels)),
      bounds_(std::move(bounds)),
      counts_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    PAGEDLLM_CHECK(std::isfinite(bounds_[i]), "histogram bound ", i, " is ", bounds_[i]);
    PAGEDLLM_CHECK(i == 0 || bounds_[i - 1] < bounds_[i],
                   "histogram bounds must increase: ", bounds_[i - 1], " then ", bounds_[i]);
  }
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  // The first bound >= value (le: "less than or equal"); past the end is the +Inf bucket.
  const size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, value);
}

std::vector<uint64_t> Histogram::bucket_counts() const {
  std::vector<uint64_t> counts(bounds_.size() + 1);
  for (size_t i = 0; i < counts.size(); ++i) counts[i] = counts_[i].load(std::memory_order_relaxed);
  return counts;
}

uint64_t Histogram::count() const {
  uint64_t total = 0;
  for (uint64_t n : bucket_counts()) total += n;
  return total;
}

void Histogram::AppendSamples(const std::string& name, std::string* out) const {
  // One read of the buckets: _count is the +Inf bucket even while Observe runs elsewhere.
  const std::vector<uint64_t> counts = bucket_counts();
  uint64_t cumulative = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    cumulative += counts[i];
    const std::pair<const char*, std::string> le{
        "le", i < bounds_.size() ? FormatMetricValue(bounds_[i]) : "+Inf"};
    AppendSample(name, "_bucket", labels(), &le, FormatMetricValue(cumulative), out);
  }
  AppendSample(name, "_sum", labels(), nullptr, FormatMetricValue(sum()), out);
  AppendSample(name, "_count", labels(), nullptr, FormatMetricValue(cumulative), out);
}

MetricRegistry::Family& MetricRegistry::FamilyFor(const std::string& name, const std::string& help,
                                                  MetricType type,
                                                  const std::vector<double>& bounds,
                                                  const MetricLabels& labels) {
  PAGEDLLM_CHECK(IsValidMetricName(name), "bad metric name \"", name, "\"");
  // (vLLM names a histogram *_total too: iteration_tokens_total.)
  PAGEDLLM_CHECK(type != MetricType::kCounter || EndsWith(name, "_total"), "counter ", name,
                 " must be named *_total");
  for (const auto& [label, value] : labels) {
    PAGEDLLM_CHECK(IsValidLabelName(label), "metric ", name, ": bad label name \"", label, "\"");
    PAGEDLLM_CHECK(type != MetricType::kHistogram || label != "le", "histogram ", name,
                   ": the label le is the buckets'");
    const int times = std::count_if(labels.begin(), labels.end(),
                                    [&](const auto& other) { return other.first == label; });
    PAGEDLLM_CHECK(times == 1, "metric ", name, ": label ", label, " given ", times, " times");
  }
  auto it =
      std::find_if(families_.begin(), families_.end(),
                   [&](const std::unique_ptr<Family>& family) { return family->name == name; });
  if (it == families_.end()) {
    families_.push_back(std::make_unique<Family>(Family{name, help, type, bounds, {}}));
    return *families_.back();
  }
  Family& family = **it;
  PAGEDLLM_CHECK(family.type == type, "metric ", name, " was added as a ", TypeName(family.type),
                 ", now as a ", TypeName(type));
  PAGEDLLM_CHECK(family.help == help, "metric ", name, " was added with another help text");
  PAGEDLLM_CHECK(family.bounds == bounds, "histogram ", name, " was added with other buckets");
  for (const std::unique_ptr<Metric>& series : family.series) {
    PAGEDLLM_CHECK(series->labels() != labels, "metric ", name,
                   " already has a series with these labels");
  }
  return family;
}

Counter* MetricRegistry::AddCounter(const std::string& name, const std::string& help,
                                    MetricLabels labels) {
  std::lock_guard<std::mutex> lock(mutex_);
  Family& family = FamilyFor(name, help, MetricType::kCounter, {}, labels);
  family.series.push_back(std::make_unique<Counter>(std::move(labels)));
  return static_cast<Counter*>(family.series.back().get());
}

Gauge* MetricRegistry::AddGauge(const std::string& name, const std::string& help,
                                MetricLabels labels) {
  std::lock_guard<std::mutex> lock(mutex_);
  Family& family = FamilyFor(name, help, MetricType::kGauge, {}, labels);
  family.series.push_back(std::make_unique<Gauge>(std::move(labels)));
  return static_cast<Gauge*>(family.series.back().get());
}

Histogram* MetricRegistry::AddHistogram(const std::string& name, const std::string& help,
                                        std::vector<double> bounds, MetricLabels labels) {
  std::lock_guard<std::mutex> lock(mutex_);
  Family& family = FamilyFor(name, help, MetricType::kHistogram, bounds, labels);
  family.series.push_back(std::make_unique<Histogram>(std::move(labels), std::move(bounds)));
  return static_cast<Histogram*>(family.series.back().get());
}

namespace {

// A histogram's series rendered under another family's name.
class HistogramMirror final : public Metric {
 public:
  explicit HistogramMirror(const Histogram* source) : Metric(source->labels()), source_(source) {}
  void AppendSamples(const std::string& name, std::string* out) const override {
    source_->AppendSamples(name, out);
  }

 private:
  const Histogram* const source_;
};

}  // namespace

void MetricRegistry::AddHistogramMirror(const std::string& name, const std::string& help,
                                        const Histogram* source) {
  std::lock_guard<std::mutex> lock(mutex_);
  Family& family =
      FamilyFor(name, help, MetricType::kHistogram, source->bounds(), source->labels());
  family.series.push_back(std::make_unique<HistogramMirror>(source));
}

std::string MetricRegistry::Render() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  for (const std::unique_ptr<Family>& family : families_) {
    absl::StrAppend(&out, "# HELP ", family->name, " ", EscapeHelp(family->help), "\n");
    absl::StrAppend(&out, "# TYPE ", family->name, " ", TypeName(family->type), "\n");
    for (const std::unique_ptr<Metric>& series : family->series) {
      series->AppendSamples(family->name, &out);
    }
  }
  return out;
}

}  // namespace pagedllm::coordinator
