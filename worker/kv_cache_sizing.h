// How many KV blocks fit on this rank's GPU: after the weights are loaded, one forward pass at
// the largest step the scheduler may send (max_num_batched_tokens tokens) measures the peak of
// activation memory; what is left of gpu_memory_utilization × total, after everything the
// process (and any other) holds, becomes KV blocks. The caching allocator keeps the profiled
// activation memory reserved, so serving never needs more than was measured.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "kernels/device.h"
#include "worker/model/llama_model.h"

namespace pagedllm::worker {

struct KvSizingInput {
  int block_size = 16;
  int max_num_batched_tokens = 2048;
  double gpu_memory_utilization = 0.9;
  kernels::DType cache_dtype = kernels::DType::kBFloat16;
  int num_layers = 0;
  int num_kv_heads_local = 0;
  int head_dim = 0;
};

struct KvSizing {
  int64_t num_blocks = 0;
  size_t activation_peak_bytes = 0;
  size_t bytes_per_block = 0;
};

absl::StatusOr<KvSizing> ProfileKvBlocks(kernels::Device& device, LlamaModel& model,
                                         const KvSizingInput& input);

}  // namespace pagedllm::worker
