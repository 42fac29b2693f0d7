// Argument checks of Ops::SampleRows, shared by the CPU and CUDA backends so both accept exactly
// the same calls and name the same problems (a failed check is a caller bug and aborts).
#pragma once

#include <cstdint>

#include "kernels/ops.h"

namespace pagedllm::kernels {

class Device;

struct SampleRowsShape {
  int64_t rows = 0;         // P
  int64_t vocab_local = 0;  // columns of each shard's rows
  int num_top = 0;          // N: columns of top_ids / top_logprobs (0 when they are empty)
};

// Checks devices, dtypes and shapes (logits float32 only when `float32_logits_only`).
SampleRowsShape CheckSampleRowsArgs(const Device* device, const SampleRowsArgs& args,
                                    bool float32_logits_only);

// Aborts naming the row and field unless `params` is valid for an op with `num_top` top columns
// (temperature finite and >= 0, top_k >= 0, top_p in (0, 1], min_p in [0, 1],
// num_top_logprobs in [0, num_top]). Backends that can read the params on the host call it.
void CheckSampleRowParams(int64_t row, const SampleRowParams& params, int num_top);

}  // namespace pagedllm::kernels
