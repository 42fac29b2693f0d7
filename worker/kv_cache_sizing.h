// How many KV blocks fit on this rank's GPU. After the weights are loaded, the largest step the
// scheduler may send is run once: max_num_batched_tokens tokens in min(max_num_seqs, tokens)
// sequences, every one sampled (so the logits of that many rows, gathered over the ranks, and
// the sampler's workspace at its largest are part of it). That measures the peak of activation
// memory; the caching allocator keeps it reserved, so eager steps never need more. Decode graphs
// draw on a pool of their own (CudaDevice::CaptureGraph) and share one logits buffer: with graphs
// on, a second run, a decode step at the largest graph batch, measures that, and it is kept free
// too. What is left of
// gpu_memory_utilization × total, after everything the process (and any other) holds, becomes KV
// blocks.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "kernels/device.h"
#include "worker/model/llama_model.h"

namespace pagedllm::worker {

struct KvSizingInput {
  int block_size = 16;
  int max_num_batched_tokens = 2048;
  int max_num_seqs = 256;
  bool reserve_graph_pool = false;  // decode graphs on
  int world_size = 1;               // tensor-parallel ranks (rank 0 samples the gathered logits)
  int64_t vocab_size = 0;
  double gpu_memory_utilization = 0.9;
  kernels::DType cache_dtype = kernels::DType::kBFloat16;
  int num_layers = 0;
  int num_kv_heads_local = 0;
  int head_dim = 0;
};

struct KvSizing {
  int64_t num_blocks = 0;
  size_t activation_peak_bytes = 0;
  size_t graph_reserve_bytes = 0;
  size_t bytes_per_block = 0;
};

absl::StatusOr<KvSizing> ProfileKvBlocks(kernels::Device& device, LlamaModel& model,
                                         const KvSizingInput& input);

}  // namespace pagedllm::worker
