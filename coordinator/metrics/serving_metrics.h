// ServingMetrics: the coordinator's Prometheus metrics (docs/metrics.md lists every one), named
// as vLLM names them with the prefix pagedllm: instead of vllm:, each with a model_name label.
//
// Two sources:
//   - the engine's observer hooks (EngineObserver), pushed as they happen: per-request latencies
//     and token counts, finish reasons, per-step times and sizes;
//   - at every Render, the engine's stats() (queue lengths, KV usage, prefix-cache, preemption and
//     restart counts) and, when given, the workers' health.
//
// Wiring (coordinator/main.cc):
//   ServingMetrics metrics({model_name, max_model_len, worker_health});  // outlives the engine
//   Engine engine(scheduler_config, limits, &executor, &metrics);
//   metrics.set_engine(&engine);
//   ... GET /metrics answers metrics.Render() with Content-Type kPrometheusContentType.
//
// Thread safety: the observer hooks run on the engine's loop thread and only update atomics
// (a failure with a status code not seen before also adds its series); Render may run on any
// thread, concurrently with them and with other Renders.
#pragma once

#include <array>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "coordinator/engine/engine.h"
#include "coordinator/engine/engine_observer.h"
#include "coordinator/metrics/registry.h"

namespace pagedllm::coordinator {

struct WorkerHealth {
  bool healthy = false;  // every worker is connected and the cluster may run steps
  // [world size]: whether each rank's control stream is open; empty when not known.
  std::vector<bool> rank_connected;
};

struct ServingMetricsOptions {
  std::string model_name;  // the model_name label of every series
  // The request token-count histograms have buckets 1, 2, 5, 10, 20, 50, ... up to this.
  int max_model_len = 8192;
  // Asked at every Render when set (e.g. from WorkerHub::health() and connected_ranks());
  // without it, the worker-health series are left out.
  std::function<WorkerHealth()> worker_health;
};

class ServingMetrics final : public EngineObserver {
 public:
  explicit ServingMetrics(ServingMetricsOptions options);
  ServingMetrics(const ServingMetrics&) = delete;
  ServingMetrics& operator=(const ServingMetrics&) = delete;

  // The engine whose stats() each Render reads (not owned). Set once, before the first Render;
  // until then those series stay 0.
  void set_engine(const Engine* engine) { engine_ = engine; }

  // Every metric in the Prometheus text exposition format 0.0.4 (kPrometheusContentType).
  std::string Render() const;

  // EngineObserver.
  void OnStep(const StepObservation& step) override;
  void OnFirstToken(double seconds, int num_prompt_tokens) override;
  void OnNextToken(double seconds) override;
  void OnRequestFinished(const RequestObservation& request) override;
  void OnRequestFailed(const absl::Status& status) override;

 private:
  MetricLabels Labels(MetricLabels extra = {}) const;
  // Copies what the engine and the workers report now into the scrape-time series.
  void Refresh() const;

  const ServingMetricsOptions options_;
  const Engine* engine_ = nullptr;
  mutable MetricRegistry registry_;   // mutable: Render adds the per-rank series it learns of
  mutable std::mutex refresh_mutex_;  // one Render at a time

  // Read at Render.
  Gauge* num_requests_running_;
  Gauge* num_requests_waiting_;
  Gauge* num_requests_swapped_;
  Gauge* kv_cache_usage_perc_;
  Gauge* gpu_cache_usage_perc_;
  Gauge* cpu_cache_usage_perc_;
  Gauge* prefix_cache_hit_rate_;
  Counter* prefix_cache_queries_;
  Counter* prefix_cache_hits_;
  Counter* num_preemptions_;
  Counter* swapped_out_;
  Counter* swapped_in_;
  Counter* generation_tokens_;
  Counter* computed_tokens_;
  Counter* decode_forward_seconds_;
  Counter* prefill_forward_seconds_;
  Counter* device_busy_seconds_;
  Counter* device_idle_seconds_;
  Counter* steps_ahead_;
  Counter* worker_restarts_;
  Gauge* workers_healthy_ = nullptr;  // with worker_health
  // [rank], added by the first Render that learns of the rank; guarded by refresh_mutex_.
  mutable std::vector<Gauge*> worker_connected_;

  // Pushed by the engine.
  Counter* prompt_tokens_;
  Counter* success_stop_;
  Counter* success_length_;
  Counter* success_abort_;
  // By absl::StatusCode (1..16), each added with its first failure; engine thread only.
  std::array<Counter*, 17> failures_{};
  Histogram* iteration_tokens_;
  Histogram* step_decode_seconds_;
  Histogram* step_prefill_seconds_;
  Histogram* time_to_first_token_;
  Histogram* inter_token_latency_;
  Histogram* request_time_per_output_token_;
  Histogram* e2e_latency_;
  Histogram* queue_time_;
  Histogram* inference_time_;
  Histogram* prefill_time_;
  Histogram* decode_time_;
  Histogram* request_prompt_tokens_;
  Histogram* request_generation_tokens_;
  Histogram* request_max_tokens_;
  Histogram* request_n_;
};

// vLLM's token-count buckets: 1, 2, 5 times 1, 10, 100, ... while <= max_value.
std::vector<double> OneTwoFiveBuckets(int max_value);

}  // namespace pagedllm::coordinator
