// Host-side token sampling for one sequence: greedy, or temperature + top-k + top-p + min-p
// with the sequence's own RNG, plus the logprobs vLLM reports.
//
// Rank 0 of the worker group samples for the whole batch: for each row of logits it calls the
// row's sequence's SequenceSampler::Sample. Draws are a pure function of (logits, config, seed,
// number of earlier draws): the RNG is std::mt19937_64 (fully specified by the C++ standard) and
// the uniform variate and the walk over the distribution are written here, so a seeded
// sequence gives the same tokens with every standard library.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "worker/sampling/sampling_config.h"

namespace pagedllm::worker {

struct TokenLogprob {
  int32_t token_id = 0;
  float logprob = 0.0f;  // natural log of the raw model probability
};

struct SampledToken {
  int32_t token_id = 0;
  // log_softmax(raw logits)[token_id], computed in double; valid when the config's
  // num_top_logprobs >= 0, else 0.
  float logprob = 0.0f;
  // The num_top_logprobs most likely tokens of the raw distribution, most likely first (ties:
  // lower id first). Empty when num_top_logprobs <= 0.
  std::vector<TokenLogprob> top;
};

// One sequence's sampling state: its config and its RNG. Not thread safe; distinct samplers may
// be used from distinct threads. Copyable (a copy continues the same random stream).
//
// Sample() semantics, in order (the same as vLLM/Hugging Face, with top-k before top-p):
//   temperature == 0: the argmax of the logits; ties go to the lowest token id.
//   otherwise:  p = softmax(logits / temperature)
//               top-k:  keep the k highest logits (ties: lower id kept)
//               top-p:  over the top-k set renormalised and sorted by probability, keep the
//                       shortest prefix whose mass reaches top_p (always at least one token;
//                       a mass within 1e-6 of top_p counts as reaching it, so exact-looking
//                       boundaries are not decided by float rounding)
//               min-p:  keep tokens with p >= min_p * p_max
//               draw one token from the kept set, renormalised, with the RNG.
// Every filter keeps a prefix of the order (logit descending, id ascending), so the kept set
// never depends on how a partial sort happens to order equal elements.
// Logprobs are always those of the raw model distribution, not of the filtered one.
//
// Cost: O(V) for greedy and for plain temperature sampling; top-k adds O(V + k log k) and top-p
// sorts only as much of the candidate set as its nucleus needs. NaN logits are never sampled.
class SequenceSampler {
 public:
  // `config` must have passed ValidateSamplingConfig. The RNG is seeded with config.seed, or with
  // `fallback_seed` when that is unset.
  SequenceSampler(const SamplingConfig& config, uint64_t fallback_seed);

  // logits: [vocab_size] float32 on the host, the model's raw output for this sequence.
  SampledToken Sample(const float* logits, int vocab_size);

  const SamplingConfig& config() const { return config_; }

 private:
  int32_t SampleRandom(const float* logits, int vocab_size);
  // A uniform double in [0, 1) from the top 53 bits of one RNG output.
  double NextUniform();

  SamplingConfig config_;
  std::mt19937_64 rng_;
};

// Fills `token`'s logprob and top list from the raw logits (the config's num_top_logprobs >= 0).
void FillLogprobs(const float* logits, int vocab_size, int num_top_logprobs, SampledToken* token);

}  // namespace pagedllm::worker
