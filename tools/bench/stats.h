// What the benchmark computes from its measurements: latency percentiles, throughput, and the
// floor of an offline run (the time no server could beat on the given bandwidth and FLOP rate).
// Plain C++: no gRPC.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pagedllm::bench {

// One request as the client saw it. Times are seconds: arrival and sent since the run's start,
// the rest since the call was sent.
struct RequestRecord {
  int prompt_len = 0;
  int planned_output_len = 0;  // max_tokens asked for
  double arrival_s = 0;        // when it was due (the Poisson schedule; 0 offline)
  double sent_s = 0;           // when its call started (later while the concurrency cap held it)
  double first_token_s = -1;   // the first chunk holding a token; -1: none came
  double latency_s = 0;        // the call's end
  int64_t output_tokens = 0;   // tokens received, over every choice
  // Token positions received: each chunk counts its longest choice's tokens (n choices advance
  // together, one position per engine step).
  int steps = 0;
  // Inter-token latencies: the gap between a chunk and the one before it, spread evenly over
  // the chunk's positions (a chunk of k positions after a gap g adds k values of g / k); none
  // for the first chunk, which TTFT covers.
  std::vector<double> itl_s;
  bool ok = false;
  std::string error;  // the call's status ("INVALID_ARGUMENT: message") when not ok
};

struct Summary {
  size_t count = 0;
  double mean = 0;
  double p50 = 0;
  double p90 = 0;
  double p99 = 0;
};

// The q-quantile (q in [0, 1]) of sorted values, interpolated linearly between the closest ranks
// (numpy's default, as vLLM's benchmarks report). 0 for no values.
double Percentile(const std::vector<double>& sorted, double q);
Summary Summarize(std::vector<double> values);

// A run's numbers. Tokens and latencies count completed requests only; failed ones are counted
// and the first error kept.
struct RunReport {
  int num_requests = 0;
  int completed = 0;
  int failed = 0;
  std::string first_error;
  double duration_s = 0;  // the first send to the last call's end
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  double request_throughput = 0;  // completed / duration
  // Whether the server keeps up, free of a finite run's drain and of the Poisson draws' noise:
  // arrival_rate is the rate the arrivals realized, (n - 1) / (last - first arrival);
  // completion_rate is arrival_rate / b, where b is the least-squares slope of the completion
  // times against the arrival times of the completed requests. A server that keeps up finishes
  // each request a bounded time after it arrived (b = 1); one that falls behind adds queueing
  // delay in proportion to the time run (b > 1: completions come b times slower than arrivals).
  // Both 0 when every request arrived at once or fewer than 3 completed.
  double arrival_rate = 0;
  double completion_rate = 0;
  double input_tokens_per_s = 0;
  double output_tokens_per_s = 0;
  double total_tokens_per_s = 0;
  // Milliseconds. TTFT: send to first token. TPOT: (latency - TTFT) / (steps - 1), requests of
  // more than one step. ITL: every gap of every request. E2E: send to the call's end.
  Summary ttft_ms;
  Summary tpot_ms;
  Summary itl_ms;
  Summary e2e_ms;
};

RunReport Analyze(const std::vector<RequestRecord>& records, double duration_s);

// The floor of an offline run on the server's own per-worker sizes (every worker runs the same
// step at once, so per-worker bytes and FLOPs give times directly):
//   memory:  KV bytes read + steps x weight bytes, at memory_gbps. Every generated token reads the
//            KV of its context: output token i of a request reads prompt + i tokens, once per
//            sequence (best_of samples or beams each read their own). Steps: the longest
//            request's output, or more when the concurrency cap forces waves
//            (ceil(all output / cap)).
//   compute: GEMM FLOPs 2 x params x (prompt tokens computed + output tokens), at peak_tflops,
//            with params = weight bytes / bytes_per_param (the embedding table included).
//            Attention FLOPs are left out: ServerStats has no layer or head counts.
// The floor is the larger of the two.
struct FloorRequest {
  int prompt_len = 0;
  int output_len = 0;
};

struct FloorInputs {
  std::vector<FloorRequest> requests;
  int sequences_per_request = 1;  // best_of (or n): sequences each request runs
  int concurrency = 0;            // requests in flight at most; 0: all at once
  int64_t weight_bytes_per_worker = 0;
  int64_t kv_bytes_per_token_per_worker = 0;
  double bytes_per_param = 2;         // 2: bfloat16 / float16 weights
  int64_t skipped_prompt_tokens = 0;  // prompt tokens found in the prefix cache (not computed)
  double memory_gbps = 0;
  double peak_tflops = 0;
};

struct Floor {
  double kv_bytes = 0;      // per worker
  int64_t steps = 0;        // engine steps the weights are read in, at least
  double weight_bytes = 0;  // steps x weight bytes per worker
  double memory_s = 0;
  double params_per_worker = 0;
  int64_t gemm_tokens = 0;
  double gemm_flops = 0;  // per worker
  double compute_s = 0;
  double time_s = 0;  // max(memory_s, compute_s)
  bool compute_bound = false;
};

Floor ComputeFloor(const FloorInputs& inputs);

}  // namespace pagedllm::bench
