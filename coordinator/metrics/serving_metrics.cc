#include "coordinator/metrics/serving_metrics.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace pagedllm::coordinator {
namespace {

// vLLM's bucket boundaries (vllm/v1/metrics/loggers.py), so that dashboards' quantiles match.
const std::vector<double> kTimeToFirstTokenBuckets = {
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25,  0.5,   0.75,
    1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
const std::vector<double> kPerTokenBuckets = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,
                                              0.3,  0.4,   0.5,  0.75,  1.0, 2.5,  5.0,
                                              7.5,  10.0,  20.0, 40.0,  80.0};
const std::vector<double> kRequestLatencyBuckets = {
    0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
    30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
const std::vector<double> kIterationTokenBuckets = {1,   8,    16,   32,   64,   128,  256,
                                                    512, 1024, 2048, 4096, 8192, 16384};
const std::vector<double> kNBuckets = {1, 2, 5, 10, 20};
// Ours: a step takes from well under a millisecond (a small CPU model) to seconds (a long
// prefill chunk on a big one).
const std::vector<double> kStepBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                          0.05,   0.075, 0.1,    0.15,  0.2,  0.3,
                                          0.5,    0.75,  1.0,    2.5,   5.0,  10.0};

double Fraction(double part, double whole) { return whole > 0 ? part / whole : 0.0; }

}  // namespace

std::vector<double> OneTwoFiveBuckets(int max_value) {
  std::vector<double> buckets;
  for (double scale = 1; scale <= max_value; scale *= 10) {
    for (double mantissa : {1, 2, 5}) {
      if (mantissa * scale <= max_value) buckets.push_back(mantissa * scale);
    }
  }
  return buckets;
}

MetricLabels ServingMetrics::Labels(MetricLabels extra) const {
  MetricLabels labels = {{"model_name", options_.model_name}};
  for (auto& label : extra) labels.push_back(std::move(label));
  return labels;
}

ServingMetrics::ServingMetrics(ServingMetricsOptions options) : options_(std::move(options)) {
  MetricRegistry& r = registry_;
  // Scheduler state.
  num_requests_running_ =
      r.AddGauge("pagedllm:num_requests_running",
                 "Sequences in the running batch (each parallel sample or beam counts).", Labels());
  num_requests_waiting_ =
      r.AddGauge("pagedllm:num_requests_waiting", "Sequences waiting to be scheduled.", Labels());
  num_requests_swapped_ = r.AddGauge("pagedllm:num_requests_swapped",
                                     "Sequences swapped out to host memory.", Labels());
  // KV cache.
  kv_cache_usage_perc_ =
      r.AddGauge("pagedllm:kv_cache_usage_perc",
                 "KV-cache usage: the fraction of blocks in use, 1 means 100 percent.", Labels());
  gpu_cache_usage_perc_ = r.AddGauge(
      "pagedllm:gpu_cache_usage_perc",
      "KV-cache usage, 1 means 100 percent (vLLM v0's name; same as kv_cache_usage_perc).",
      Labels());
  cpu_cache_usage_perc_ = r.AddGauge(
      "pagedllm:cpu_cache_usage_perc",
      "Host swap space usage: the fraction of host blocks in use, 1 means 100 percent.", Labels());
  prefix_cache_queries_ =
      r.AddCounter("pagedllm:prefix_cache_queries_total",
                   "Prefix cache queries, in terms of number of queried tokens.", Labels());
  prefix_cache_hits_ =
      r.AddCounter("pagedllm:prefix_cache_hits_total",
                   "Prefix cache hits, in terms of number of cached tokens.", Labels());
  prefix_cache_hit_rate_ = r.AddGauge(
      "pagedllm:prefix_cache_hit_rate",
      "Prefix cache hits over queries (tokens) since the coordinator started.", Labels());
  // Engine counters.
  num_preemptions_ = r.AddCounter("pagedllm:num_preemptions_total",
                                  "Cumulative number of sequences preempted.", Labels());
  swapped_out_ = r.AddCounter("pagedllm:sequences_swapped_out_total",
                              "Sequences swapped out to host memory.", Labels());
  swapped_in_ = r.AddCounter("pagedllm:sequences_swapped_in_total",
                             "Sequences swapped back in from host memory.", Labels());
  prompt_tokens_ =
      r.AddCounter("pagedllm:prompt_tokens_total", "Number of prefill tokens processed.", Labels());
  generation_tokens_ = r.AddCounter("pagedllm:generation_tokens_total",
                                    "Number of generation tokens processed.", Labels());
  computed_tokens_ = r.AddCounter(
      "pagedllm:computed_tokens_total",
      "Tokens whose KV the workers computed (prompt chunks, decodes and recomputation).", Labels());
  const std::string success_help = "Count of successfully processed requests.";
  success_stop_ = r.AddCounter("pagedllm:request_success_total", success_help,
                               Labels({{"finished_reason", "stop"}}));
  success_length_ = r.AddCounter("pagedllm:request_success_total", success_help,
                                 Labels({{"finished_reason", "length"}}));
  success_abort_ = r.AddCounter("pagedllm:request_success_total", success_help,
                                Labels({{"finished_reason", "abort"}}));
  // Request histograms.
  request_prompt_tokens_ =
      r.AddHistogram("pagedllm:request_prompt_tokens", "Number of prefill tokens processed.",
                     OneTwoFiveBuckets(options_.max_model_len), Labels());
  request_generation_tokens_ =
      r.AddHistogram("pagedllm:request_generation_tokens", "Number of generation tokens processed.",
                     OneTwoFiveBuckets(options_.max_model_len), Labels());
  iteration_tokens_ = r.AddHistogram("pagedllm:iteration_tokens_total",
                                     "Histogram of number of tokens per engine_step.",
                                     kIterationTokenBuckets, Labels());
  request_max_tokens_ = r.AddHistogram("pagedllm:request_params_max_tokens",
                                       "Histogram of the max_tokens request parameter.",
                                       OneTwoFiveBuckets(options_.max_model_len), Labels());
  request_n_ = r.AddHistogram("pagedllm:request_params_n", "Histogram of the n request parameter.",
                              kNBuckets, Labels());
  time_to_first_token_ = r.AddHistogram("pagedllm:time_to_first_token_seconds",
                                        "Histogram of time to first token in seconds.",
                                        kTimeToFirstTokenBuckets, Labels());
  inter_token_latency_ =
      r.AddHistogram("pagedllm:inter_token_latency_seconds",
                     "Histogram of inter-token latency in seconds.", kPerTokenBuckets, Labels());
  // The same observations under vLLM v0's name: observed once, rendered twice.
  r.AddHistogramMirror(
      "pagedllm:time_per_output_token_seconds",
      "Histogram of time per output token in seconds (same as inter_token_latency_seconds).",
      inter_token_latency_);
  request_time_per_output_token_ = r.AddHistogram(
      "pagedllm:request_time_per_output_token_seconds",
      "Histogram of time_per_output_token_seconds per request.", kPerTokenBuckets, Labels());
  e2e_latency_ = r.AddHistogram("pagedllm:e2e_request_latency_seconds",
                                "Histogram of e2e request latency in seconds.",
                                kRequestLatencyBuckets, Labels());
  queue_time_ = r.AddHistogram("pagedllm:request_queue_time_seconds",
                               "Histogram of time spent in WAITING phase for request.",
                               kRequestLatencyBuckets, Labels());
  inference_time_ = r.AddHistogram("pagedllm:request_inference_time_seconds",
                                   "Histogram of time spent in RUNNING phase for request.",
                                   kRequestLatencyBuckets, Labels());
  prefill_time_ = r.AddHistogram("pagedllm:request_prefill_time_seconds",
                                 "Histogram of time spent in PREFILL phase for request.",
                                 kRequestLatencyBuckets, Labels());
  decode_time_ = r.AddHistogram("pagedllm:request_decode_time_seconds",
                                "Histogram of time spent in DECODE phase for request.",
                                kRequestLatencyBuckets, Labels());
  // Ours: steps and workers.
  const std::string step_help =
      "Histogram of engine step round trips (schedule sent to result back) in seconds.";
  step_decode_seconds_ = r.AddHistogram("pagedllm:step_duration_seconds", step_help, kStepBuckets,
                                        Labels({{"kind", "decode"}}));
  step_prefill_seconds_ = r.AddHistogram("pagedllm:step_duration_seconds", step_help, kStepBuckets,
                                         Labels({{"kind", "prefill"}}));
  const std::string forward_help = "Seconds rank 0 spent running steps (its forward passes).";
  decode_forward_seconds_ = r.AddCounter("pagedllm:step_forward_seconds_total", forward_help,
                                         Labels({{"kind", "decode"}}));
  prefill_forward_seconds_ = r.AddCounter("pagedllm:step_forward_seconds_total", forward_help,
                                          Labels({{"kind", "prefill"}}));
  const std::string device_help =
      "Seconds rank 0's device (CUDA events) spent on steps (state=busy) and idle between "
      "consecutive steps while the engine had work (state=idle).";
  device_busy_seconds_ =
      r.AddCounter("pagedllm:device_seconds_total", device_help, Labels({{"state", "busy"}}));
  device_idle_seconds_ =
      r.AddCounter("pagedllm:device_seconds_total", device_help, Labels({{"state", "idle"}}));
  steps_ahead_ = r.AddCounter(
      "pagedllm:steps_ahead_total",
      "Steps sent to the workers before the previous step's tokens were back (async scheduling).",
      Labels());
  worker_restarts_ =
      r.AddCounter("pagedllm:worker_restarts_total",
                   "Times the workers were replaced after a failure and the engine took the new "
                   "ones.",
                   Labels());
  if (options_.worker_health) {
    workers_healthy_ = r.AddGauge(
        "pagedllm:workers_healthy",
        "1 while every worker is connected and the cluster can run steps, else 0.", Labels());
  }
}

void ServingMetrics::Refresh() const {
  if (engine_ != nullptr) {
    const EngineStats stats = engine_->stats();
    num_requests_running_->Set(stats.num_running);
    num_requests_waiting_->Set(stats.num_waiting);
    num_requests_swapped_->Set(stats.num_swapped);
    const double usage = 1.0 - Fraction(stats.num_free_blocks, stats.num_total_blocks);
    kv_cache_usage_perc_->Set(stats.num_total_blocks > 0 ? usage : 0.0);
    gpu_cache_usage_perc_->Set(stats.num_total_blocks > 0 ? usage : 0.0);
    cpu_cache_usage_perc_->Set(Fraction(stats.num_total_host_blocks - stats.num_free_host_blocks,
                                        stats.num_total_host_blocks));
    const SchedulerCounters& counters = stats.counters;
    prefix_cache_queries_->IncrementTo(counters.num_prefix_cache_queries);
    prefix_cache_hits_->IncrementTo(counters.num_prefix_cache_hit_tokens);
    prefix_cache_hit_rate_->Set(
        Fraction(counters.num_prefix_cache_hit_tokens, counters.num_prefix_cache_queries));
    num_preemptions_->IncrementTo(counters.num_preemptions);
    swapped_out_->IncrementTo(counters.num_swapped_out);
    swapped_in_->IncrementTo(counters.num_swapped_in);
    generation_tokens_->IncrementTo(stats.tokens_generated);
    computed_tokens_->IncrementTo(stats.tokens_computed);
    decode_forward_seconds_->IncrementTo(stats.decode_forward_ns_total * 1e-9);
    prefill_forward_seconds_->IncrementTo(stats.prefill_forward_ns_total * 1e-9);
    worker_restarts_->IncrementTo(stats.num_reconfigurations);
    device_busy_seconds_->IncrementTo(stats.device_busy_ns_total * 1e-9);
    device_idle_seconds_->IncrementTo(stats.device_idle_ns_total * 1e-9);
    steps_ahead_->IncrementTo(stats.num_steps_ahead);
  }
  if (options_.worker_health) {
    const WorkerHealth health = options_.worker_health();
    workers_healthy_->Set(health.healthy ? 1 : 0);
    for (size_t rank = worker_connected_.size(); rank < health.rank_connected.size(); ++rank) {
      worker_connected_.push_back(registry_.AddGauge(
          "pagedllm:worker_connected",
          "1 while this worker rank's control stream to the coordinator is open, else 0.",
          Labels({{"rank", absl::StrCat(rank)}})));
    }
    for (size_t rank = 0; rank < worker_connected_.size(); ++rank) {
      worker_connected_[rank]->Set(
          rank < health.rank_connected.size() && health.rank_connected[rank] ? 1 : 0);
    }
  }
}

std::string ServingMetrics::Render() const {
  std::lock_guard<std::mutex> lock(refresh_mutex_);
  Refresh();
  return registry_.Render();
}

void ServingMetrics::OnStep(const StepObservation& step) {
  (step.decode ? step_decode_seconds_ : step_prefill_seconds_)->Observe(step.seconds);
  iteration_tokens_->Observe(step.num_scheduled_tokens);
}

void ServingMetrics::OnFirstToken(double seconds, int num_prompt_tokens) {
  time_to_first_token_->Observe(seconds);
  prompt_tokens_->Increment(num_prompt_tokens);
}

void ServingMetrics::OnNextToken(double seconds) { inter_token_latency_->Observe(seconds); }

void ServingMetrics::OnRequestFinished(const RequestObservation& request) {
  switch (request.reason) {
    case FinishReason::kStop:
      success_stop_->Increment();
      break;
    case FinishReason::kAbort:
      success_abort_->Increment();
      break;
    default:
      success_length_->Increment();
      break;
  }
  e2e_latency_->Observe(request.e2e_seconds);
  if (request.queue_seconds >= 0) queue_time_->Observe(request.queue_seconds);
  if (request.prefill_seconds >= 0) prefill_time_->Observe(request.prefill_seconds);
  if (request.decode_seconds >= 0) decode_time_->Observe(request.decode_seconds);
  if (request.inference_seconds >= 0) inference_time_->Observe(request.inference_seconds);
  if (request.time_per_output_token_seconds >= 0) {
    request_time_per_output_token_->Observe(request.time_per_output_token_seconds);
  }
  request_prompt_tokens_->Observe(request.num_prompt_tokens);
  request_generation_tokens_->Observe(request.num_generation_tokens);
  request_max_tokens_->Observe(request.max_tokens);
  request_n_->Observe(request.n);
}

void ServingMetrics::OnRequestFailed(const absl::Status& status) {
  const size_t code = static_cast<size_t>(status.code());
  if (status.ok() || code >= failures_.size()) return;  // not a canonical error code
  if (failures_[code] == nullptr) {
    failures_[code] = registry_.AddCounter(
        "pagedllm:request_failure_total",
        "Requests that ended with an error, by status code (a series appears with its first).",
        Labels({{"code", absl::AsciiStrToLower(absl::StatusCodeToString(status.code()))}}));
  }
  failures_[code]->Increment();
}

}  // namespace pagedllm::coordinator
