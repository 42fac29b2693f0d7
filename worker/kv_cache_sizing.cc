#include "worker/kv_cache_sizing.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status.h"
#include "kernels/sampling_params.h"
#include "worker/model/kv_cache.h"

namespace pagedllm::worker {

using kernels::DType;

namespace {

// Runs one step of `tokens` tokens in `seqs` sequences, every one sampled (the sampler at its
// largest too), in a scratch cache just big enough; returns the peak of device memory in use
// above what was in use before.
absl::StatusOr<size_t> ProfileStep(kernels::Device& device, LlamaModel& model,
                                   const KvSizingInput& input, int tokens, int seqs) {
  // Sequence s gets tokens / seqs tokens (the first tokens % seqs one more), in blocks of its own.
  std::vector<int32_t> ids(tokens, 0), positions(tokens), slots(tokens), query_start(seqs + 1, 0),
      context_lens(seqs), rows(seqs);
  int max_blocks = 0;
  for (int s = 0; s < seqs; ++s) {
    context_lens[s] = tokens / seqs + (s < tokens % seqs ? 1 : 0);
    query_start[s + 1] = query_start[s] + context_lens[s];
    rows[s] = query_start[s + 1] - 1;
    max_blocks = std::max(max_blocks, (context_lens[s] + input.block_size - 1) / input.block_size);
  }
  const int profile_blocks = seqs * max_blocks;
  std::vector<int32_t> table(static_cast<size_t>(seqs) * max_blocks);
  std::iota(table.begin(), table.end(), 0);
  for (int s = 0; s < seqs; ++s) {
    for (int t = 0; t < context_lens[s]; ++t) {
      positions[query_start[s] + t] = t;
      slots[query_start[s] + t] = (s * max_blocks) * input.block_size + t;
    }
  }

  device.Synchronize();
  PAGEDLLM_ASSIGN_OR_RETURN(kernels::MemoryStats before, device.memory_stats());
  device.ResetPeakMemory();
  {
    PAGEDLLM_ASSIGN_OR_RETURN(
        KvCache scratch,
        KvCache::Create(device, input.cache_dtype, input.num_layers, profile_blocks,
                        input.block_size, input.num_kv_heads_local, input.head_dim));
    ForwardBatch batch;
    PAGEDLLM_ASSIGN_OR_RETURN(batch.token_ids, device.FromHost(DType::kInt32, {tokens}, ids));
    PAGEDLLM_ASSIGN_OR_RETURN(batch.positions, device.FromHost(DType::kInt32, {tokens}, positions));
    PAGEDLLM_ASSIGN_OR_RETURN(batch.slot_mapping, device.FromHost(DType::kInt32, {tokens}, slots));
    PAGEDLLM_ASSIGN_OR_RETURN(batch.block_tables,
                              device.FromHost(DType::kInt32, {seqs, max_blocks}, table));
    PAGEDLLM_ASSIGN_OR_RETURN(batch.query_start,
                              device.FromHost(DType::kInt32, {seqs + 1}, query_start));
    PAGEDLLM_ASSIGN_OR_RETURN(batch.context_lens,
                              device.FromHost(DType::kInt32, {seqs}, context_lens));
    PAGEDLLM_ASSIGN_OR_RETURN(batch.sample_rows, device.FromHost(DType::kInt32, {seqs}, rows));
    PAGEDLLM_ASSIGN_OR_RETURN(kernels::Tensor logits, model.Forward(batch, scratch));
    // The sampler at its largest: the logits of every rank (as gathered on rank 0), nucleus
    // sampling with the most top logprobs.
    const int world = std::max(1, input.world_size);
    kernels::Tensor gathered = logits;
    if (world > 1) {
      PAGEDLLM_ASSIGN_OR_RETURN(
          gathered, device.Allocate(logits.dtype(), {world * logits.dim(0), logits.dim(1)}));
      for (int r = 0; r < world; ++r) {
        device.CopyDeviceToDevice(
            gathered.Slice(r * logits.dim(0), (r + 1) * logits.dim(0)).raw_data(),
            logits.raw_data(), logits.bytes());
      }
    }
    kernels::SampleRowParams row;
    row.temperature = 1.0f;
    row.top_p = 0.95f;
    row.num_top_logprobs = kernels::kMaxSampleTopLogprobs;
    std::vector<int32_t> words(static_cast<size_t>(seqs) * kernels::kSampleRowParamWords);
    for (int s = 0; s < seqs; ++s) {
      std::memcpy(words.data() + static_cast<size_t>(s) * kernels::kSampleRowParamWords, &row,
                  sizeof(row));
    }
    kernels::SampleRowsArgs args;
    args.logits = gathered;
    args.num_shards = world;
    args.vocab_size = std::min<int64_t>(input.vocab_size > 0 ? input.vocab_size : logits.dim(1),
                                        world * logits.dim(1));
    PAGEDLLM_ASSIGN_OR_RETURN(
        args.params, device.FromHost(DType::kInt32, {seqs, kernels::kSampleRowParamWords}, words));
    PAGEDLLM_ASSIGN_OR_RETURN(args.token_ids, device.Allocate(DType::kInt32, {seqs}));
    PAGEDLLM_ASSIGN_OR_RETURN(args.logprobs, device.Allocate(DType::kFloat32, {seqs}));
    PAGEDLLM_ASSIGN_OR_RETURN(
        args.top_ids, device.Allocate(DType::kInt32, {seqs, kernels::kMaxSampleTopLogprobs}));
    PAGEDLLM_ASSIGN_OR_RETURN(
        args.top_logprobs,
        device.Allocate(DType::kFloat32, {seqs, kernels::kMaxSampleTopLogprobs}));
    device.ops().SampleRows(args);
    device.Synchronize();
    // The largest step must run at startup, or no step of that size could run later.
    if (absl::Status failed = device.ops().TakeFailure(); !failed.ok()) {
      return absl::Status(failed.code(), absl::StrCat("profiling a step of ", tokens,
                                                      " tokens for the KV cache's size failed: ",
                                                      failed.message()));
    }
  }
  PAGEDLLM_ASSIGN_OR_RETURN(kernels::MemoryStats after, device.memory_stats());
  return after.peak_in_use - before.in_use;
}

}  // namespace

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
  const int tokens = std::max(1, input.max_num_batched_tokens);
  const int seqs = std::clamp(input.max_num_seqs, 1, tokens);
  PAGEDLLM_ASSIGN_OR_RETURN(sizing.activation_peak_bytes,
                            ProfileStep(device, model, input, tokens, seqs));
  if (input.reserve_graph_pool) {
    // Decode graphs' pool and their shared logits: a decode step at the largest graph batch.
    PAGEDLLM_ASSIGN_OR_RETURN(sizing.graph_reserve_bytes,
                              ProfileStep(device, model, input, seqs, seqs));
  }
  PAGEDLLM_ASSIGN_OR_RETURN(kernels::MemoryStats after, device.memory_stats());

  // Everything on the GPU now (weights, the reserved activation memory, CUDA context, cuBLAS and
  // NCCL buffers, other processes) is not available for the KV cache.
  const double budget = input.gpu_memory_utilization * static_cast<double>(after.total);
  const double used = static_cast<double>(after.total - after.free);
  const double for_kv = budget - used - static_cast<double>(sizing.graph_reserve_bytes);
  sizing.num_blocks = for_kv > 0 ? static_cast<int64_t>(for_kv / sizing.bytes_per_block) : 0;
  PAGEDLLM_LOG(INFO) << "memory profile: " << (after.total >> 20) << " MiB total, "
                     << (after.in_use >> 20) << " MiB weights, activation peak "
                     << (sizing.activation_peak_bytes >> 20) << " MiB at " << tokens
                     << " tokens in " << seqs << " sampled sequences, "
                     << (sizing.graph_reserve_bytes >> 20) << " MiB kept for decode graphs, "
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
