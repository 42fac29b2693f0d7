// The Prometheus registry: exact text for each kind of metric (golden strings), escaping, value
// formatting, registration mistakes, concurrent updates; and the test parser itself, which must
// refuse what a Prometheus server would.
#include "coordinator/metrics/registry.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "tests/coordinator/metrics/prometheus_text.h"

namespace pagedllm::coordinator {
namespace {

using testing::ParsePrometheusText;

TEST(MetricRegistryTest, CountersRenderWithAndWithoutLabels) {
  MetricRegistry registry;
  Counter* requests = registry.AddCounter("pagedllm:requests_total", "Requests seen.");
  Counter* tokens = registry.AddCounter("pagedllm:tokens_total", "Tokens.",
                                        {{"model_name", "m"}, {"kind", "prompt"}});
  requests->Increment();
  requests->Increment(2);
  tokens->Increment(0.5);
  EXPECT_EQ(registry.Render(),
            "# HELP pagedllm:requests_total Requests seen.\n"
            "# TYPE pagedllm:requests_total counter\n"
            "pagedllm:requests_total 3\n"
            "# HELP pagedllm:tokens_total Tokens.\n"
            "# TYPE pagedllm:tokens_total counter\n"
            "pagedllm:tokens_total{model_name=\"m\",kind=\"prompt\"} 0.5\n");
}

TEST(MetricRegistryTest, CounterIncrementToNeverGoesDown) {
  MetricRegistry registry;
  Counter* counter = registry.AddCounter("c_total", "C.");
  counter->IncrementTo(10);
  counter->IncrementTo(7);
  EXPECT_EQ(counter->value(), 10);
  counter->IncrementTo(12);
  EXPECT_EQ(counter->value(), 12);
}

TEST(MetricRegistryTest, GaugesGoUpAndDown) {
  MetricRegistry registry;
  Gauge* gauge = registry.AddGauge("pagedllm:queue", "Queue length.", {{"model_name", "m"}});
  gauge->Set(4);
  gauge->Set(-1.25);
  EXPECT_EQ(registry.Render(),
            "# HELP pagedllm:queue Queue length.\n"
            "# TYPE pagedllm:queue gauge\n"
            "pagedllm:queue{model_name=\"m\"} -1.25\n");
}

TEST(MetricRegistryTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  MetricRegistry registry;
  Histogram* latency = registry.AddHistogram("pagedllm:latency_seconds", "Latency.", {0.5, 1, 2.5});
  for (double v : {0.25, 0.5, 2.0, 100.0}) latency->Observe(v);  // 0.5 is in le="0.5"
  EXPECT_EQ(registry.Render(),
            "# HELP pagedllm:latency_seconds Latency.\n"
            "# TYPE pagedllm:latency_seconds histogram\n"
            "pagedllm:latency_seconds_bucket{le=\"0.5\"} 2\n"
            "pagedllm:latency_seconds_bucket{le=\"1\"} 2\n"
            "pagedllm:latency_seconds_bucket{le=\"2.5\"} 3\n"
            "pagedllm:latency_seconds_bucket{le=\"+Inf\"} 4\n"
            "pagedllm:latency_seconds_sum 102.75\n"
            "pagedllm:latency_seconds_count 4\n");
  EXPECT_EQ(latency->count(), 4u);
  EXPECT_EQ(latency->bucket_counts(), (std::vector<uint64_t>{2, 0, 1, 1}));
}

TEST(MetricRegistryTest, LabelledHistogramPutsLeLast) {
  MetricRegistry registry;
  Histogram* h = registry.AddHistogram("h_seconds", "H.", {1}, {{"model_name", "m"}});
  h->Observe(3);
  EXPECT_EQ(registry.Render(),
            "# HELP h_seconds H.\n"
            "# TYPE h_seconds histogram\n"
            "h_seconds_bucket{model_name=\"m\",le=\"1\"} 0\n"
            "h_seconds_bucket{model_name=\"m\",le=\"+Inf\"} 1\n"
            "h_seconds_sum{model_name=\"m\"} 3\n"
            "h_seconds_count{model_name=\"m\"} 1\n");
}

TEST(MetricRegistryTest, AMirrorRendersItsSourcesObservationsUnderItsOwnName) {
  MetricRegistry registry;
  Histogram* h = registry.AddHistogram("a_seconds", "A.", {1}, {{"model_name", "m"}});
  registry.AddHistogramMirror("b_seconds", "B.", h);
  h->Observe(0.5);
  h->Observe(3);
  EXPECT_EQ(registry.Render(),
            "# HELP a_seconds A.\n"
            "# TYPE a_seconds histogram\n"
            "a_seconds_bucket{model_name=\"m\",le=\"1\"} 1\n"
            "a_seconds_bucket{model_name=\"m\",le=\"+Inf\"} 2\n"
            "a_seconds_sum{model_name=\"m\"} 3.5\n"
            "a_seconds_count{model_name=\"m\"} 2\n"
            "# HELP b_seconds B.\n"
            "# TYPE b_seconds histogram\n"
            "b_seconds_bucket{model_name=\"m\",le=\"1\"} 1\n"
            "b_seconds_bucket{model_name=\"m\",le=\"+Inf\"} 2\n"
            "b_seconds_sum{model_name=\"m\"} 3.5\n"
            "b_seconds_count{model_name=\"m\"} 2\n");
}

TEST(MetricRegistryTest, SeriesOfOneFamilyRenderTogetherUnderOneHeader) {
  MetricRegistry registry;
  Counter* stop = registry.AddCounter("r_total", "R.", {{"finished_reason", "stop"}});
  registry.AddGauge("g", "G.");
  Counter* length = registry.AddCounter("r_total", "R.", {{"finished_reason", "length"}});
  stop->Increment();
  length->Increment(2);
  EXPECT_EQ(registry.Render(),
            "# HELP r_total R.\n"
            "# TYPE r_total counter\n"
            "r_total{finished_reason=\"stop\"} 1\n"
            "r_total{finished_reason=\"length\"} 2\n"
            "# HELP g G.\n"
            "# TYPE g gauge\n"
            "g 0\n");
}

TEST(MetricRegistryTest, EscapesLabelValuesAndHelp) {
  MetricRegistry registry;
  registry.AddGauge("g", "Back\\slash and\nnew line, \"quotes\" stay.",
                    {{"model_name", "a\\b\"c\nd"}});
  EXPECT_EQ(registry.Render(),
            "# HELP g Back\\\\slash and\\nnew line, \"quotes\" stay.\n"
            "# TYPE g gauge\n"
            "g{model_name=\"a\\\\b\\\"c\\nd\"} 0\n");
  absl::StatusOr<testing::PromExposition> parsed = ParsePrometheusText(registry.Render());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->families[0].help, "Back\\slash and\nnew line, \"quotes\" stay.");
  EXPECT_EQ(parsed->families[0].samples[0].labels.at("model_name"), "a\\b\"c\nd");
}

TEST(MetricRegistryTest, FormatsValuesAsPrometheusParsesThem) {
  EXPECT_EQ(FormatMetricValue(0), "0");
  EXPECT_EQ(FormatMetricValue(-0.0), "0");
  EXPECT_EQ(FormatMetricValue(3), "3");
  EXPECT_EQ(FormatMetricValue(-2), "-2");
  EXPECT_EQ(FormatMetricValue(2560), "2560");
  EXPECT_EQ(FormatMetricValue(123456789012), "123456789012");
  EXPECT_EQ(FormatMetricValue(0.1), "0.1");
  EXPECT_EQ(FormatMetricValue(0.3), "0.3");
  EXPECT_EQ(FormatMetricValue(0.001), "0.001");
  EXPECT_EQ(FormatMetricValue(123.456), "123.456");
  EXPECT_EQ(FormatMetricValue(1e-5), "1e-05");
  EXPECT_EQ(FormatMetricValue(1e20), "1e+20");
  EXPECT_EQ(FormatMetricValue(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(FormatMetricValue(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(FormatMetricValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatMetricValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatMetricValue(std::nan("")), "NaN");
  // Every form reads back exactly.
  for (double v : {0.1, 1.0 / 3, 1e-5, 1e20, 6.02214076e23, 2.5e-300, 123.456}) {
    EXPECT_EQ(std::strtod(FormatMetricValue(v).c_str(), nullptr), v);
  }
}

TEST(MetricRegistryTest, ChecksNames) {
  EXPECT_TRUE(IsValidMetricName("pagedllm:num_requests_running"));
  EXPECT_TRUE(IsValidMetricName("_x9"));
  EXPECT_FALSE(IsValidMetricName("9x"));
  EXPECT_FALSE(IsValidMetricName("a-b"));
  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_TRUE(IsValidLabelName("model_name"));
  EXPECT_FALSE(IsValidLabelName("a:b"));
  EXPECT_FALSE(IsValidLabelName("__name__"));
}

TEST(MetricRegistryDeathTest, RegistrationMistakesAbort) {
  MetricRegistry registry;
  registry.AddCounter("c_total", "C.", {{"k", "v"}});
  EXPECT_DEATH(registry.AddCounter("c_total", "C.", {{"k", "v"}}), "already has a series");
  EXPECT_DEATH(registry.AddGauge("c_total", "C."), "was added as a counter");
  EXPECT_DEATH(registry.AddCounter("c_total", "Other help.", {{"k", "w"}}), "another help");
  EXPECT_DEATH(registry.AddCounter("requests", "R."), "must be named \\*_total");
  EXPECT_DEATH(registry.AddGauge("bad-name", "B."), "bad metric name");
  EXPECT_DEATH(registry.AddGauge("g", "G.", {{"__x", "v"}}), "bad label name");
  EXPECT_DEATH(registry.AddGauge("g", "G.", {{"a", "1"}, {"a", "2"}}), "given 2 times");
  EXPECT_DEATH(registry.AddHistogram("h", "H.", {1}, {{"le", "1"}}), "the label le");
  EXPECT_DEATH(registry.AddHistogram("h", "H.", {2, 1}), "must increase");
  registry.AddHistogram("h", "H.", {1, 2}, {{"k", "a"}});
  EXPECT_DEATH(registry.AddHistogram("h", "H.", {1, 3}, {{"k", "b"}}), "other buckets");
  Counter* counter = registry.AddCounter("d_total", "D.");
  EXPECT_DEATH(counter->Increment(-1), "only goes up");
}

// Updates from several threads while another renders: nothing is lost, and every scrape is
// valid with consistent histograms.
TEST(MetricRegistryTest, ConcurrentUpdatesAndScrapes) {
  MetricRegistry registry;
  Counter* counter = registry.AddCounter("c_total", "C.");
  Histogram* histogram = registry.AddHistogram("h_seconds", "H.", {0.001, 0.01, 0.1, 1});
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        counter->Increment();
        histogram->Observe(((i + t) % 5) * 0.05);  // 0, 0.05, ..., 0.2
      }
    });
  }
  int scrapes = 0;
  double last_count = 0;
  while (scrapes < 50 || histogram->count() < kThreads * kPerThread) {
    absl::StatusOr<testing::PromExposition> parsed = ParsePrometheusText(registry.Render());
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    absl::StatusOr<double> count = parsed->Value("c_total");
    ASSERT_TRUE(count.ok());
    EXPECT_GE(*count, last_count);
    last_count = *count;
    ++scrapes;
    if (scrapes > 100000) break;
  }
  for (std::thread& writer : writers) writer.join();
  EXPECT_EQ(counter->value(), kThreads * kPerThread);
  EXPECT_EQ(histogram->count(), static_cast<uint64_t>(kThreads * kPerThread));
  // Each thread's values cycle through 0, 0.05, 0.1, 0.15, 0.2 evenly.
  EXPECT_EQ(histogram->bucket_counts(),
            (std::vector<uint64_t>{kThreads * kPerThread / 5, 0, 2 * kThreads * kPerThread / 5,
                                   2 * kThreads * kPerThread / 5, 0}));
  EXPECT_NEAR(histogram->sum(), kThreads * kPerThread * 0.1, 1e-6);
}

// The parser refuses what a Prometheus server refuses, or what our contract forbids.
TEST(PrometheusTextParserTest, RefusesMalformedText) {
  const std::string header = "# TYPE h histogram\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"# TYPE g gauge\ng 1", "line feed"},
      {"g 1\n", "without TYPE"},
      {"# TYPE g gauge\ng{a=\"1\"} 1\n# TYPE g gauge\n", "second TYPE"},
      {"# TYPE g gauge\ng 1\n# TYPE f gauge\nf 1\ng{a=\"1\"} 2\n", "one group"},
      {"# TYPE g gauge\ng 1\ng 2\n", "repeated series"},
      {"# TYPE g gauge\ng one\n", "bad value"},
      {"# TYPE g gauge\ng{a=\"x\\t\"} 1\n", "unknown escape"},
      {"# TYPE g gauge\ng{a=\"x} 1\n", "unterminated"},
      {"# TYPE g gauge\ng{a=\"1\",a=\"2\"} 1\n", "given twice"},
      {"# TYPE g gauge\ng{a-b=\"1\"} 1\n", "needs =\"value\""},
      {"# TYPE c_total counter\nc_total -1\n", "negative counter"},
      {"# TYPE g gauge\n# HELP g a\\tb\n", "unknown escape"},
      {header + "h_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", "+Inf"},
      {header + "h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
       "not cumulative"},
      {header + "h_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\n"
                "h_count 1\n",
       "not increasing"},
      {header + "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n", "is not the +Inf bucket"},
      {header + "h_bucket{le=\"+Inf\"} 1\nh_count 1\n", "no _sum"},
  };
  for (const auto& [text, why] : cases) {
    absl::StatusOr<testing::PromExposition> parsed = ParsePrometheusText(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_NE(parsed.status().message().find(why), std::string::npos)
        << text << " -> " << parsed.status();
  }
}

TEST(PrometheusTextParserTest, ReadsWhatTheFormatAllows) {
  absl::StatusOr<testing::PromExposition> parsed = ParsePrometheusText(
      "# A plain comment\n"
      "\n"
      "# HELP x_total Things.\n"
      "# TYPE x_total counter\n"
      "x_total{a=\"1\",b=\"q\\\"\",} 1.5e3 1700000000000\n"
      "# TYPE y gauge\n"
      "y NaN\n"
      "y{z=\"\"} -Inf\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->families.size(), 2u);
  EXPECT_EQ(*parsed->Value("x_total", {{"b", "q\""}}), 1500);
  EXPECT_TRUE(std::isinf(*parsed->Value("y", {{"z", ""}})));
}

}  // namespace
}  // namespace pagedllm::coordinator
