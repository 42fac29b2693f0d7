// SampleRowParams: one row's sampling parameters for Ops::SampleRows (kernels/ops.h). The op
// takes them as the rows of an int32 tensor [P, kSampleRowParamWords], each row the bytes of one
// SampleRowParams, so one small host-to-device copy carries a whole batch's parameters.
// Plain data, readable by host and device code alike.
#pragma once

#include <cstdint>

namespace pagedllm::kernels {

struct SampleRowParams {
  float temperature = 0.0f;  // 0: greedy (the argmax, ties to the lowest id); else > 0, finite
  int32_t top_k = 0;         // keep the k most likely tokens; 0 (or >= the vocab size): off
  float top_p = 1.0f;        // nucleus mass in (0, 1]; 1: off
  float min_p = 0.0f;        // keep tokens with p >= min_p * p_max, in [0, 1]; 0: off
  uint32_t seed_lo = 0;      // the sequence's 64-bit seed (the Philox key)
  uint32_t seed_hi = 0;
  uint32_t draw_lo = 0;  // how many tokens the sequence sampled before this one (Philox counter)
  uint32_t draw_hi = 0;
  int32_t num_top_logprobs = 0;  // top logprobs to report for this row, in [0, the op's N]
  int32_t reserved = 0;          // 0

  void set_seed(uint64_t seed) {
    seed_lo = static_cast<uint32_t>(seed);
    seed_hi = static_cast<uint32_t>(seed >> 32);
  }
  void set_draw(uint64_t draw) {
    draw_lo = static_cast<uint32_t>(draw);
    draw_hi = static_cast<uint32_t>(draw >> 32);
  }
};

inline constexpr int kSampleRowParamWords = 10;  // int32 words per row of the params tensor
static_assert(sizeof(SampleRowParams) == kSampleRowParamWords * sizeof(int32_t),
              "SampleRowParams must be exactly the words of one params row");

// The most top logprobs SampleRows reports per row (clients may ask for 20; beam search asks
// for up to 4 candidates per beam of a width up to 16).
inline constexpr int kMaxSampleTopLogprobs = 64;

}  // namespace pagedllm::kernels
