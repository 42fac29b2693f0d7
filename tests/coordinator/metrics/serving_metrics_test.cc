// The serving metrics: exact buckets for given observations; and, with a real Engine over a fake
// executor, every scrape is valid Prometheus text and the values move as requests run (tokens,
// latency histograms, finish reasons, queue gauges, failures, worker health and restarts).
// docs/metrics.md must document every metric rendered.
#include "coordinator/metrics/serving_metrics.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/coordinator/metrics/prometheus_text.h"

namespace pagedllm::coordinator {
namespace {

using testing::ParsePrometheusText;
using testing::PromExposition;
using Labels = std::map<std::string, std::string>;

constexpr int32_t kToken = 7;
constexpr char kModel[] = "tiny-llama";

// Samples kToken for every sampling sequence, a millisecond a step; fails steps and reports
// UNAVAILABLE while unhealthy.
class FakeExecutor final : public RunOnSendExecutor {
 public:
  absl::StatusOr<StepOutcome> Run(const SchedulerOutput& step) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::lock_guard<std::mutex> lock(mutex_);
    if (!healthy_) return Lost();
    StepOutcome outcome;
    outcome.forward_ns = 500000;
    outcome.device_busy_ns = 400000;
    outcome.device_idle_before_ns = 100000;
    for (const ScheduledSequence& scheduled : step.scheduled) {
      if (scheduled.sample) outcome.tokens.push_back({scheduled.seq_id, kToken, {}});
    }
    return outcome;
  }
  absl::Status health() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return healthy_ ? absl::OkStatus() : Lost();
  }
  void set_healthy(bool healthy) {
    std::lock_guard<std::mutex> lock(mutex_);
    healthy_ = healthy;
  }
  static absl::Status Lost() { return absl::UnavailableError("worker rank 1 (host h) lost"); }

 private:
  mutable std::mutex mutex_;
  bool healthy_ = true;
};

RequestSpec Request(const std::string& key, int num_prompt_tokens, int max_tokens) {
  RequestSpec spec;
  spec.request_id = key;
  spec.key = key;
  for (int i = 0; i < num_prompt_tokens; ++i) spec.prompt_token_ids.push_back(10 + i);
  spec.max_tokens = max_tokens;
  spec.ignore_eos = true;
  return spec;
}

// Everything the handle holds until the request's end or an error (polling; the frontend is
// woken by a listener instead).
std::vector<GenerationChunk> Drain(RequestHandle& handle, absl::Duration timeout) {
  std::vector<GenerationChunk> all;
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    std::vector<GenerationChunk> chunks;
    if (!handle.TryTake(&chunks)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    for (GenerationChunk& chunk : chunks) {
      const bool last = chunk.request_done || !chunk.error.ok();
      all.push_back(std::move(chunk));
      if (last) return all;
    }
  }
  return all;
}

PromExposition Scrape(const ServingMetrics& metrics) {
  absl::StatusOr<PromExposition> parsed = ParsePrometheusText(metrics.Render());
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? *parsed : PromExposition{};
}

// The sample's value; -1 (and a failure) when it is missing.
double Value(const PromExposition& scrape, const std::string& name, Labels labels = {}) {
  labels["model_name"] = kModel;
  absl::StatusOr<double> value = scrape.Value(name, labels);
  EXPECT_TRUE(value.ok()) << name << ": " << value.status();
  return value.ok() ? *value : -1;
}

double Count(const PromExposition& scrape, const std::string& histogram, Labels labels = {}) {
  return Value(scrape, histogram + "_count", std::move(labels));
}

// Scrapes until `holds` is true of a scrape (the engine reports a request's end just after its
// last chunk, and publishes its queues after each step); the last scrape either way.
PromExposition ScrapeUntil(const ServingMetrics& metrics,
                           const std::function<bool(const PromExposition&)>& holds) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  PromExposition scrape = Scrape(metrics);
  while (!holds(scrape) && absl::Now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    scrape = Scrape(metrics);
  }
  EXPECT_TRUE(holds(scrape)) << metrics.Render();
  return scrape;
}

// Counters and histogram counts never go down between two scrapes.
void ExpectMonotonic(const PromExposition& before, const PromExposition& after) {
  for (const testing::PromFamily& family : before.families) {
    if (family.type != "counter" && family.type != "histogram") continue;
    for (const testing::PromSample& sample : family.samples) {
      absl::StatusOr<double> later = after.Value(sample.name, sample.labels);
      ASSERT_TRUE(later.ok()) << sample.name << " disappeared";
      EXPECT_GE(*later, sample.value) << sample.name;
    }
  }
}

SchedulerConfig Config() {
  SchedulerConfig config;
  config.max_num_seqs = 1;  // a second request waits behind the first
  config.max_model_len = 4096;
  config.blocks.num_blocks = 512;
  config.blocks.num_host_blocks = 64;
  return config;
}

ModelLimits Limits() {
  ModelLimits limits;
  limits.vocab_size = 100;
  limits.max_model_len = 4096;
  limits.eos_token_ids = {2};
  return limits;
}

ServingMetricsOptions Options() {
  ServingMetricsOptions options;
  options.model_name = kModel;
  options.max_model_len = 4096;
  options.worker_health = [] { return WorkerHealth{true, {true, false}}; };
  return options;
}

// Every histogram and counter the coordinator serves, with what it must be before any request.
const std::vector<std::string> kFamilies = {
    "pagedllm:num_requests_running",
    "pagedllm:num_requests_waiting",
    "pagedllm:num_requests_swapped",
    "pagedllm:kv_cache_usage_perc",
    "pagedllm:gpu_cache_usage_perc",
    "pagedllm:cpu_cache_usage_perc",
    "pagedllm:prefix_cache_queries_total",
    "pagedllm:prefix_cache_hits_total",
    "pagedllm:prefix_cache_hit_rate",
    "pagedllm:num_preemptions_total",
    "pagedllm:sequences_swapped_out_total",
    "pagedllm:sequences_swapped_in_total",
    "pagedllm:prompt_tokens_total",
    "pagedllm:generation_tokens_total",
    "pagedllm:computed_tokens_total",
    "pagedllm:request_success_total",
    "pagedllm:request_prompt_tokens",
    "pagedllm:request_generation_tokens",
    "pagedllm:iteration_tokens_total",
    "pagedllm:request_params_max_tokens",
    "pagedllm:request_params_n",
    "pagedllm:time_to_first_token_seconds",
    "pagedllm:time_per_output_token_seconds",
    "pagedllm:inter_token_latency_seconds",
    "pagedllm:request_time_per_output_token_seconds",
    "pagedllm:e2e_request_latency_seconds",
    "pagedllm:request_queue_time_seconds",
    "pagedllm:request_inference_time_seconds",
    "pagedllm:request_prefill_time_seconds",
    "pagedllm:request_decode_time_seconds",
    "pagedllm:step_duration_seconds",
    "pagedllm:step_forward_seconds_total",
    "pagedllm:device_seconds_total",
    "pagedllm:steps_ahead_total",
    "pagedllm:worker_restarts_total",
    "pagedllm:workers_healthy",
    "pagedllm:worker_connected",
};

TEST(ServingMetricsTest, OneTwoFiveBucketsAsVllm) {
  EXPECT_EQ(OneTwoFiveBuckets(100), (std::vector<double>{1, 2, 5, 10, 20, 50, 100}));
  EXPECT_EQ(OneTwoFiveBuckets(4096).back(), 2000);
  EXPECT_EQ(OneTwoFiveBuckets(8192).size(), 12u);
}

// Observations go to the buckets vLLM's boundaries give them.
TEST(ServingMetricsTest, ObservationsLandInVllmBuckets) {
  ServingMetricsOptions options = Options();
  options.worker_health = nullptr;
  ServingMetrics metrics(options);
  metrics.OnFirstToken(0.03, 12);  // TTFT buckets ... 0.02, 0.04 ...
  metrics.OnNextToken(0.02);       // per-token buckets 0.01, 0.025 ...
  metrics.OnStep({0.004, 12, false});
  metrics.OnStep({0.002, 1, true});
  RequestObservation request;
  request.reason = FinishReason::kStop;
  request.num_prompt_tokens = 12;
  request.num_generation_tokens = 2;
  request.max_tokens = 16;
  request.n = 1;
  request.e2e_seconds = 0.9;
  request.queue_seconds = 0.4;
  request.prefill_seconds = 0.03;
  request.decode_seconds = 0.02;
  request.inference_seconds = 0.05;
  request.time_per_output_token_seconds = 0.02;
  metrics.OnRequestFinished(request);
  metrics.OnRequestFailed(absl::ResourceExhaustedError("the queue is full"));

  const PromExposition scrape = Scrape(metrics);
  const auto bucket = [&](const std::string& name, const std::string& le, Labels labels = {}) {
    labels["le"] = le;
    return Value(scrape, name + "_bucket", labels);
  };
  EXPECT_EQ(bucket("pagedllm:time_to_first_token_seconds", "0.02"), 0);
  EXPECT_EQ(bucket("pagedllm:time_to_first_token_seconds", "0.04"), 1);
  EXPECT_EQ(bucket("pagedllm:inter_token_latency_seconds", "0.01"), 0);
  EXPECT_EQ(bucket("pagedllm:inter_token_latency_seconds", "0.025"), 1);
  EXPECT_EQ(bucket("pagedllm:time_per_output_token_seconds", "0.025"), 1);
  EXPECT_EQ(bucket("pagedllm:request_time_per_output_token_seconds", "0.025"), 1);
  EXPECT_EQ(bucket("pagedllm:e2e_request_latency_seconds", "0.8"), 0);
  EXPECT_EQ(bucket("pagedllm:e2e_request_latency_seconds", "1"), 1);
  EXPECT_EQ(bucket("pagedllm:request_queue_time_seconds", "0.3"), 0);
  EXPECT_EQ(bucket("pagedllm:request_queue_time_seconds", "0.5"), 1);
  EXPECT_EQ(bucket("pagedllm:request_prefill_time_seconds", "0.3"), 1);
  EXPECT_EQ(bucket("pagedllm:request_prompt_tokens", "10"), 0);
  EXPECT_EQ(bucket("pagedllm:request_prompt_tokens", "20"), 1);
  EXPECT_EQ(bucket("pagedllm:request_generation_tokens", "2"), 1);
  EXPECT_EQ(bucket("pagedllm:request_params_max_tokens", "20"), 1);
  EXPECT_EQ(bucket("pagedllm:request_params_n", "1"), 1);
  EXPECT_EQ(bucket("pagedllm:iteration_tokens_total", "1"), 1);
  EXPECT_EQ(bucket("pagedllm:iteration_tokens_total", "8"), 1);
  EXPECT_EQ(bucket("pagedllm:iteration_tokens_total", "16"), 2);
  EXPECT_EQ(bucket("pagedllm:step_duration_seconds", "0.0025", {{"kind", "decode"}}), 1);
  EXPECT_EQ(bucket("pagedllm:step_duration_seconds", "0.0025", {{"kind", "prefill"}}), 0);
  EXPECT_EQ(bucket("pagedllm:step_duration_seconds", "0.005", {{"kind", "prefill"}}), 1);
  EXPECT_EQ(Value(scrape, "pagedllm:prompt_tokens_total"), 12);
  EXPECT_EQ(Value(scrape, "pagedllm:request_success_total", {{"finished_reason", "stop"}}), 1);
  EXPECT_EQ(Value(scrape, "pagedllm:request_success_total", {{"finished_reason", "length"}}), 0);
  EXPECT_EQ(Value(scrape, "pagedllm:request_failure_total", {{"code", "resource_exhausted"}}), 1);
  // No engine yet: its series are there, at 0; no health callback: no worker series.
  EXPECT_EQ(Value(scrape, "pagedllm:num_requests_running"), 0);
  EXPECT_EQ(scrape.Family("pagedllm:workers_healthy"), nullptr);
}

// The scenario of the issue: values move as requests run.
TEST(ServingMetricsTest, ValuesMoveAsRequestsRun) {
  FakeExecutor executor;
  ServingMetrics metrics(Options());
  Engine engine(Config(), Limits(), &executor, &metrics);
  metrics.set_engine(&engine);
  engine.Start();

  // Before any request: every metric is there, and nothing has happened.
  PromExposition before = Scrape(metrics);
  for (const std::string& name : kFamilies) {
    EXPECT_NE(before.Family(name), nullptr) << name;
  }
  EXPECT_EQ(Value(before, "pagedllm:prompt_tokens_total"), 0);
  EXPECT_EQ(Value(before, "pagedllm:generation_tokens_total"), 0);
  EXPECT_EQ(Count(before, "pagedllm:time_to_first_token_seconds"), 0);
  EXPECT_EQ(Value(before, "pagedllm:num_requests_running"), 0);
  EXPECT_EQ(Value(before, "pagedllm:kv_cache_usage_perc"), 0);
  EXPECT_EQ(Value(before, "pagedllm:workers_healthy"), 1);
  EXPECT_EQ(Value(before, "pagedllm:worker_connected", {{"rank", "0"}}), 1);
  EXPECT_EQ(Value(before, "pagedllm:worker_connected", {{"rank", "1"}}), 0);

  // One request of 40 prompt tokens and 4 new ones: a prefill step, then 3 decode steps.
  std::vector<GenerationChunk> chunks =
      Drain(*engine.Submit(Request("a", 40, 4)), absl::Seconds(10));
  ASSERT_FALSE(chunks.empty());
  ASSERT_TRUE(chunks.back().request_done);
  PromExposition after_a = ScrapeUntil(metrics, [](const PromExposition& s) {
    return s.Value("pagedllm:request_success_total", {{"finished_reason", "length"}}).value_or(0) ==
           1;
  });
  ExpectMonotonic(before, after_a);
  EXPECT_EQ(Value(after_a, "pagedllm:prompt_tokens_total"), 40);
  EXPECT_EQ(Value(after_a, "pagedllm:generation_tokens_total"), 4);
  EXPECT_EQ(Value(after_a, "pagedllm:computed_tokens_total"), 43);
  EXPECT_EQ(Count(after_a, "pagedllm:time_to_first_token_seconds"), 1);
  EXPECT_GT(Value(after_a, "pagedllm:time_to_first_token_seconds_sum"), 0);
  EXPECT_EQ(Count(after_a, "pagedllm:inter_token_latency_seconds"), 3);
  EXPECT_EQ(Count(after_a, "pagedllm:time_per_output_token_seconds"), 3);
  EXPECT_EQ(Count(after_a, "pagedllm:request_time_per_output_token_seconds"), 1);
  for (const char* name :
       {"pagedllm:e2e_request_latency_seconds", "pagedllm:request_queue_time_seconds",
        "pagedllm:request_prefill_time_seconds", "pagedllm:request_decode_time_seconds",
        "pagedllm:request_inference_time_seconds"}) {
    EXPECT_EQ(Count(after_a, name), 1) << name;
  }
  EXPECT_GE(Value(after_a, "pagedllm:e2e_request_latency_seconds_sum"),
            Value(after_a, "pagedllm:request_inference_time_seconds_sum"));
  EXPECT_EQ(Value(after_a, "pagedllm:request_prompt_tokens_sum"), 40);
  EXPECT_EQ(Value(after_a, "pagedllm:request_generation_tokens_sum"), 4);
  EXPECT_EQ(Value(after_a, "pagedllm:request_params_max_tokens_sum"), 4);
  EXPECT_EQ(Count(after_a, "pagedllm:iteration_tokens_total"), 4);
  EXPECT_EQ(Value(after_a, "pagedllm:iteration_tokens_total_sum"), 43);
  EXPECT_EQ(Count(after_a, "pagedllm:step_duration_seconds", {{"kind", "prefill"}}), 1);
  EXPECT_EQ(Count(after_a, "pagedllm:step_duration_seconds", {{"kind", "decode"}}), 3);
  EXPECT_NEAR(Value(after_a, "pagedllm:step_forward_seconds_total", {{"kind", "decode"}}),
              3 * 0.0005, 1e-9);
  // The device: busy on all 4 steps; idle before the last 3 (the first followed a pause).
  EXPECT_NEAR(Value(after_a, "pagedllm:device_seconds_total", {{"state", "busy"}}), 4 * 0.0004,
              1e-9);
  EXPECT_NEAR(Value(after_a, "pagedllm:device_seconds_total", {{"state", "idle"}}), 3 * 0.0001,
              1e-9);
  EXPECT_GT(Value(after_a, "pagedllm:steps_ahead_total"), 0);

  // The same prompt again: its first two blocks (32 tokens) come from the prefix cache.
  chunks = Drain(*engine.Submit(Request("b", 40, 4)), absl::Seconds(10));
  ASSERT_TRUE(!chunks.empty() && chunks.back().request_done);
  PromExposition after_b = ScrapeUntil(metrics, [](const PromExposition& s) {
    return s.Value("pagedllm:request_success_total", {{"finished_reason", "length"}}).value_or(0) ==
           2;
  });
  ExpectMonotonic(after_a, after_b);
  EXPECT_EQ(Value(after_b, "pagedllm:prompt_tokens_total"), 80);
  EXPECT_EQ(Value(after_b, "pagedllm:prefix_cache_hits_total"), 32);
  EXPECT_GE(Value(after_b, "pagedllm:prefix_cache_queries_total"), 32);
  EXPECT_GT(Value(after_b, "pagedllm:prefix_cache_hit_rate"), 0);
  EXPECT_EQ(Value(after_b, "pagedllm:computed_tokens_total"), 43 + 11);

  // A stop token ends the next one at its first token: one token step, so no per-request TPOT.
  RequestSpec stop = Request("s", 8, 10);
  stop.stop_token_ids = {kToken};
  chunks = Drain(*engine.Submit(stop), absl::Seconds(10));
  ASSERT_TRUE(!chunks.empty() && chunks.back().request_done);
  PromExposition after_s = ScrapeUntil(metrics, [](const PromExposition& s) {
    return s.Value("pagedllm:request_success_total", {{"finished_reason", "stop"}}).value_or(0) ==
           1;
  });
  ExpectMonotonic(after_b, after_s);
  EXPECT_EQ(Count(after_s, "pagedllm:time_to_first_token_seconds"), 3);
  EXPECT_EQ(Count(after_s, "pagedllm:request_time_per_output_token_seconds"), 2);
  EXPECT_EQ(Value(after_s, "pagedllm:generation_tokens_total"), 9);

  // A long request (4000 steps of at least 1 ms) runs while a second one waits (max_num_seqs = 1).
  std::shared_ptr<RequestHandle> running = engine.Submit(Request("long", 8, 4000));
  std::vector<GenerationChunk> first;
  for (int i = 0; i < 10000 && !running->TryTake(&first); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_FALSE(first.empty());
  std::shared_ptr<RequestHandle> queued = engine.Submit(Request("queued", 8, 4));
  PromExposition busy = ScrapeUntil(metrics, [](const PromExposition& s) {
    return s.Value("pagedllm:num_requests_waiting", {{"model_name", kModel}}).value_or(0) == 1;
  });
  ExpectMonotonic(after_s, busy);
  EXPECT_EQ(Value(busy, "pagedllm:num_requests_running"), 1);
  EXPECT_GT(Value(busy, "pagedllm:kv_cache_usage_perc"), 0);
  EXPECT_EQ(Value(busy, "pagedllm:kv_cache_usage_perc"),
            Value(busy, "pagedllm:gpu_cache_usage_perc"));
  EXPECT_GT(Value(busy, "pagedllm:generation_tokens_total"), 9);

  // Aborted: the waiting one was never scheduled (no queue time), the running one was.
  engine.Abort("queued");
  engine.Abort("long");
  PromExposition idle = ScrapeUntil(metrics, [](const PromExposition& s) {
    return s.Value("pagedllm:request_success_total", {{"finished_reason", "abort"}}).value_or(0) ==
               2 &&
           s.Value("pagedllm:num_requests_running", {{"model_name", kModel}}).value_or(1) == 0 &&
           s.Value("pagedllm:num_requests_waiting", {{"model_name", kModel}}).value_or(1) == 0;
  });
  ExpectMonotonic(busy, idle);
  EXPECT_EQ(Count(idle, "pagedllm:e2e_request_latency_seconds"), 5);
  EXPECT_EQ(Count(idle, "pagedllm:request_queue_time_seconds"), 4);
  EXPECT_EQ(Value(idle, "pagedllm:kv_cache_usage_perc"), 0);  // freed (cached blocks count free)

  // A request the scheduler refuses counts as a failure, by code.
  chunks = Drain(*engine.Submit(Request("empty", 0, 4)), absl::Seconds(10));
  ASSERT_FALSE(chunks.empty());
  EXPECT_EQ(chunks.back().error.code(), absl::StatusCode::kInvalidArgument);
  ScrapeUntil(metrics, [](const PromExposition& s) {
    return s.Value("pagedllm:request_failure_total", {{"code", "invalid_argument"}}).value_or(0) ==
           1;
  });
  engine.Stop();
}

// A request with n = 2 parallel samples counts once: one TTFT, one success, both samples' tokens.
TEST(ServingMetricsTest, ParallelSamplesCountAsOneRequest) {
  FakeExecutor executor;
  ServingMetrics metrics(Options());
  SchedulerConfig config = Config();
  config.max_num_seqs = 4;
  Engine engine(config, Limits(), &executor, &metrics);
  metrics.set_engine(&engine);
  engine.Start();
  RequestSpec spec = Request("n2", 8, 3);
  spec.n = 2;
  spec.best_of = 2;
  spec.sampling.num_top_logprobs = -1;
  const std::vector<GenerationChunk> chunks = Drain(*engine.Submit(spec), absl::Seconds(10));
  ASSERT_TRUE(!chunks.empty() && chunks.back().request_done);
  const PromExposition scrape = ScrapeUntil(metrics, [](const PromExposition& s) {
    return s.Value("pagedllm:request_success_total", {{"finished_reason", "length"}}).value_or(0) ==
           1;
  });
  EXPECT_EQ(Count(scrape, "pagedllm:time_to_first_token_seconds"), 1);
  EXPECT_EQ(Value(scrape, "pagedllm:prompt_tokens_total"), 8);
  EXPECT_EQ(Value(scrape, "pagedllm:generation_tokens_total"), 6);
  EXPECT_EQ(Value(scrape, "pagedllm:request_generation_tokens_sum"), 6);
  EXPECT_EQ(Value(scrape, "pagedllm:request_params_n_sum"), 2);
  engine.Stop();
}

// A lost worker fails the started request with UNAVAILABLE; the restart is counted.
TEST(ServingMetricsTest, WorkerLossCountsFailuresAndRestarts) {
  FakeExecutor executor;
  ServingMetrics metrics(Options());
  Engine engine(Config(), Limits(), &executor, &metrics);
  metrics.set_engine(&engine);
  engine.Start();
  std::shared_ptr<RequestHandle> running = engine.Submit(Request("long", 8, 3000));
  std::vector<GenerationChunk> first;
  for (int i = 0; i < 10000 && !running->TryTake(&first); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_FALSE(first.empty());
  executor.set_healthy(false);
  const std::vector<GenerationChunk> failed = Drain(*running, absl::Seconds(10));
  ASSERT_FALSE(failed.empty());
  EXPECT_EQ(failed.back().error, FakeExecutor::Lost());
  ScrapeUntil(metrics, [](const PromExposition& s) {
    return s.Value("pagedllm:request_failure_total", {{"code", "unavailable"}}).value_or(0) == 1;
  });
  executor.set_healthy(true);
  engine.Reconfigure(Config().blocks, FakeExecutor::Lost());
  const PromExposition scrape = Scrape(metrics);
  EXPECT_EQ(Value(scrape, "pagedllm:worker_restarts_total"), 1);
  EXPECT_EQ(Value(scrape, "pagedllm:request_success_total", {{"finished_reason", "abort"}}), 0);
  engine.Stop();
}

// Scrapes from several threads while requests run: each is valid, counters never go back.
TEST(ServingMetricsTest, ConcurrentScrapesWhileServing) {
  FakeExecutor executor;
  ServingMetrics metrics(Options());
  SchedulerConfig config = Config();
  config.max_num_seqs = 8;
  Engine engine(config, Limits(), &executor, &metrics);
  metrics.set_engine(&engine);
  engine.Start();
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (int i = 0; i < 8; ++i) {
    handles.push_back(engine.Submit(Request(absl::StrCat("r", i), 20 + i, 30)));
  }
  std::vector<std::thread> scrapers;
  for (int t = 0; t < 2; ++t) {
    scrapers.emplace_back([&] {
      PromExposition previous = Scrape(metrics);
      for (int i = 0; i < 40; ++i) {
        PromExposition next = Scrape(metrics);
        ExpectMonotonic(previous, next);
        previous = std::move(next);
      }
    });
  }
  for (auto& handle : handles) {
    const std::vector<GenerationChunk> chunks = Drain(*handle, absl::Seconds(20));
    EXPECT_TRUE(!chunks.empty() && chunks.back().request_done);
  }
  for (std::thread& scraper : scrapers) scraper.join();
  const PromExposition scrape = ScrapeUntil(metrics, [](const PromExposition& s) {
    return s.Value("pagedllm:request_success_total", {{"finished_reason", "length"}}).value_or(0) ==
           8;
  });
  EXPECT_EQ(Value(scrape, "pagedllm:generation_tokens_total"), 8 * 30);
  EXPECT_EQ(Count(scrape, "pagedllm:inter_token_latency_seconds"), 8 * 29);
  engine.Stop();
}

// docs/metrics.md documents every metric the coordinator renders (and names its labels).
TEST(ServingMetricsTest, DocsListEveryMetric) {
  ServingMetrics metrics(Options());
  metrics.OnRequestFailed(absl::UnavailableError("lost"));
  std::ifstream in(std::string(PAGEDLLM_SOURCE_DIR) + "/docs/metrics.md");
  ASSERT_TRUE(in.good()) << "docs/metrics.md is missing";
  std::stringstream docs;
  docs << in.rdbuf();
  const PromExposition scrape = Scrape(metrics);
  ASSERT_GE(scrape.families.size(), kFamilies.size());
  for (const testing::PromFamily& family : scrape.families) {
    EXPECT_NE(docs.str().find("`" + family.name + "`"), std::string::npos)
        << family.name << " is not in docs/metrics.md";
    for (const testing::PromSample& sample : family.samples) {
      for (const auto& [label, value] : sample.labels) {
        if (label == "le") continue;
        EXPECT_NE(docs.str().find("`" + label), std::string::npos)
            << family.name << "'s label " << label << " is not in docs/metrics.md";
      }
    }
  }
}

}  // namespace
}  // namespace pagedllm::coordinator
