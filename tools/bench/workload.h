// The benchmark's requests: token-id prompts and output lengths, drawn from a seed or read from
// a JSON-lines file, and written back in that same format so that another engine (transformers,
// vLLM) can be given the very same requests. Plain C++: no gRPC.
//
// File format, one request per line:
//   {"prompt_ids": [17, 3021, 9, ...], "output_len": 128}
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pagedllm::bench {

struct BenchRequest {
  std::vector<int32_t> prompt_ids;  // the whole prompt as sent (a shared prefix included)
  int output_len = 0;               // tokens to generate (max_tokens, with ignore_eos)
};

struct WorkloadOptions {
  // fixed: every prompt --prompt_len tokens, every output --output_len;
  // sharegpt / alpaca: log-normal lengths (sigma 1) with the trace's means, capped so that
  // prompt + output <= max_len (the shared prefix not counted).
  std::string kind = "fixed";
  int num_requests = 0;
  int prompt_len = 0;
  int output_len = 0;
  int max_len = 1024;
  int shared_prefix_len = 0;  // one prefix of random ids put before every prompt
  int vocab_low = 0;          // prompt ids are drawn from [vocab_low, vocab_high)
  int vocab_high = 0;
  uint64_t seed = 0;
};

// Means of the log-normal lengths (the PagedAttention paper's traces).
struct LengthMeans {
  double prompt = 0;
  double output = 0;
};
inline constexpr LengthMeans kShareGptMeans{161.0, 338.0};
inline constexpr LengthMeans kAlpacaMeans{19.0, 58.0};
// The shortest prompt and output the log-normal workloads draw.
inline constexpr int kMinDrawnLen = 4;

// INVALID_ARGUMENT naming the flag when an option is out of range.
absl::Status ValidateWorkloadOptions(const WorkloadOptions& options);

// The same options and seed give the same requests. The draw order (prefix ids; then per request
// prompt length, output length, prompt ids) is that of the tool's earlier versions.
absl::StatusOr<std::vector<BenchRequest>> MakeWorkload(const WorkloadOptions& options);

// Reads a JSON-lines workload; blank lines are skipped. Errors name the file and line. Ids must
// lie in [0, vocab_size) when vocab_size > 0.
absl::StatusOr<std::vector<BenchRequest>> ReadWorkloadFile(const std::string& path, int vocab_size);
absl::Status WriteWorkloadFile(const std::string& path, const std::vector<BenchRequest>& requests);

// Arrival times in seconds of a Poisson process of `rate` requests/s: the first at 0, then
// exponential gaps drawn from `seed`. The same seed gives the same unit gaps at every rate (the
// times scale as 1 / rate). An infinite rate puts every arrival at 0.
std::vector<double> PoissonArrivals(int num_requests, double rate, uint64_t seed);

}  // namespace pagedllm::bench
