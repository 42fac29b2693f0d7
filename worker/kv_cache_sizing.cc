#include "worker/kv_cache_sizing.h"

#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status.h"
#include "worker/model/kv_cache.h"

namespace pagedllm::worker {

using kernels::DType;

absl::StatusOr<KvSizing> ProfileKvBlocks(kernels::Device& device, LlamaModel& model,
                                         const KvSizingInput& input) {
  if (!(input.gpu_memory_utilization > 0.0 && input.gpu_memory_utilization <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--gpu_memory_utilization must be in (0, 1], got ", input.gpu_memory_utilization));
  }
  KvSizing sizing;
  sizing.bytes_per_block =
      KvCache::BytesPerBlock(input.cache_dtype, input.num_layers, input.block_size,
                             input.num_kv_heads_local, input.head_dim);
  const int tokens = input.max_num_batched_tokens;
  const int profile_blocks = (tokens + input.block_size - 1) / input.block_size;

  device.Synchronize();
  PAGEDLLM_ASSIGN_OR_RETURN(kernels::MemoryStats before, device.memory_stats());
  device.ResetPeakMemory();
  {
    // One sequence of `tokens` prompt tokens in a scratch cache just big enough for it.
    PAGEDLLM_ASSIGN_OR_RETURN(
        KvCache scratch,
        KvCache::Create(device, input.cache_dtype, input.num_layers, profile_blocks,
                        input.block_size, input.num_kv_heads_local, input.head_dim));
    std::vector<int32_t> ids(tokens, 0), positions(tokens), table(profile_blocks);
    std::iota(positions.begin(), positions.end(), 0);
    std::iota(table.begin(), table.end(), 0);
    ForwardBatch batch;
    PAGEDLLM_ASSIGN_OR_RETURN(batch.token_ids, device.FromHost(DType::kInt32, {tokens}, ids));
    PAGEDLLM_ASSIGN_OR_RETURN(batch.positions, device.FromHost(DType::kInt32, {tokens}, positions));
    PAGEDLLM_ASSIGN_OR_RETURN(batch.slot_mapping,
                              device.FromHost(DType::kInt32, {tokens}, positions));
    PAGEDLLM_ASSIGN_OR_RETURN(batch.block_tables,
                              device.FromHost(DType::kInt32, {1, profile_blocks}, table));
    PAGEDLLM_ASSIGN_OR_RETURN(batch.query_start,
                              device.FromHost(DType::kInt32, {2}, std::vector<int32_t>{0, tokens}));
    PAGEDLLM_ASSIGN_OR_RETURN(batch.context_lens,
                              device.FromHost(DType::kInt32, {1}, std::vector<int32_t>{tokens}));
    PAGEDLLM_ASSIGN_OR_RETURN(
        batch.sample_rows, device.FromHost(DType::kInt32, {1}, std::vector<int32_t>{tokens - 1}));
    PAGEDLLM_ASSIGN_OR_RETURN(kernels::Tensor logits, model.Forward(batch, scratch));
    device.Synchronize();
  }
  PAGEDLLM_ASSIGN_OR_RETURN(kernels::MemoryStats after, device.memory_stats());
  sizing.activation_peak_bytes = after.peak_in_use - before.in_use;

  // Everything on the GPU now (weights, the reserved activation memory, CUDA context, cuBLAS and
  // NCCL buffers, other processes) is not available for the KV cache.
  const double budget = input.gpu_memory_utilization * static_cast<double>(after.total);
  const double used = static_cast<double>(after.total - after.free);
  const double for_kv = budget - used;
  sizing.num_blocks = for_kv > 0 ? static_cast<int64_t>(for_kv / sizing.bytes_per_block) : 0;
  PAGEDLLM_LOG(INFO) << "memory profile: " << (after.total >> 20) << " MiB total, "
                     << (before.in_use >> 20) << " MiB weights, activation peak "
                     << (sizing.activation_peak_bytes >> 20) << " MiB at " << tokens << " tokens, "
                     << (static_cast<size_t>(used) >> 20) << " MiB in use; " << sizing.num_blocks
                     << " KV blocks of " << (sizing.bytes_per_block >> 10) << " KiB fit in "
                     << input.gpu_memory_utilization << " of the GPU";
  if (sizing.num_blocks <= 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("no room for the KV cache: ", static_cast<size_t>(used) >> 20, " MiB of ",
                     after.total >> 20,
                     " MiB are in use after loading and profiling, and "
                     "--gpu_memory_utilization allows ",
                     static_cast<size_t>(budget) >> 20, " MiB"));
  }
  return sizing;
}

}  // namespace pagedllm::worker
