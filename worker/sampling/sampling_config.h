// A sequence's sampling parameters as the worker sees them, and their validation.
//
// The coordinator validates the public SamplingParams and fills in defaults; the worker checks
// again (ValidateSamplingConfig) when a sequence first arrives, so a bad value is an error that
// names the field and the value, never undefined behaviour inside the sampler.
#pragma once

#include <cstdint>
#include <optional>

#include "absl/status/status.h"

namespace pagedllm::worker {

// The most top logprobs a sequence may ask for per token (vLLM's default max_logprobs).
inline constexpr int32_t kMaxTopLogprobs = 20;

struct SamplingConfig {
  float temperature = 1.0f;       // 0 = greedy (argmax); otherwise logits are divided by it
  float top_p = 1.0f;             // nucleus mass in (0, 1]; 1 = off
  int32_t top_k = 0;              // keep the k most likely tokens; 0 (or >= vocab size) = off
  float min_p = 0.0f;             // keep tokens with p >= min_p * p_max; 0 = off
  std::optional<uint64_t> seed;   // unset: the sampler uses the fallback seed its owner gives
  int32_t num_top_logprobs = -1;  // -1: no logprobs; 0: only the chosen token's; N: also top N
};

// OK, or INVALID_ARGUMENT naming the field, its bound and the value, e.g.
// "top_p must be in (0, 1], got 1.5".
absl::Status ValidateSamplingConfig(const SamplingConfig& config, int vocab_size);

}  // namespace pagedllm::worker
