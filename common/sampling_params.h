// SamplingParams: how one sequence picks its next token. The one internal shape of the
// sampling parameters: the frontend builds it from the public proto (pagedllm.v1.SamplingParams),
// the coordinator sends it to the workers once per sequence (worker.v1.SamplingConfig), and the
// worker turns it into the device sampler's per-row words (kernels::SampleRowParams).
#pragma once

#include <cstdint>

#include "absl/status/status.h"

namespace pagedllm {

// The most top logprobs a client may ask for per token (vLLM's default max_logprobs).
inline constexpr int32_t kMaxClientTopLogprobs = 20;
// The most top logprobs a sequence may carry internally: beam search asks for its candidates
// (2..4 per beam and width up to 16) through the same channel. Equals the device sampler's N.
inline constexpr int32_t kMaxSequenceTopLogprobs = 64;

struct SamplingParams {
  float temperature = 1.0f;       // 0 = greedy (argmax); otherwise logits are divided by it
  float top_p = 1.0f;             // nucleus mass in (0, 1]; 1 = off
  int32_t top_k = 0;              // keep the k most likely tokens; 0 (or >= vocab size) = off
  float min_p = 0.0f;             // keep tokens with p >= min_p * p_max; 0 = off
  uint64_t seed = 0;              // the Philox key of this sequence's draws (always set)
  int32_t num_top_logprobs = -1;  // -1: no logprobs; 0: only the chosen token's; N: also top N

  bool greedy() const { return temperature == 0.0f; }
};

// OK, or INVALID_ARGUMENT naming the field (after `field_prefix`, e.g. "sampling."), its bound
// and the value: "sampling.top_p must be in (0, 1], got 1.5". num_top_logprobs may go up to
// kMaxSequenceTopLogprobs and at most vocab_size.
absl::Status ValidateSamplingParams(const SamplingParams& params, int vocab_size,
                                    const char* field_prefix = "");

}  // namespace pagedllm
