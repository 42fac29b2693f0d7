// CudaOps::PickShardArgmax and CudaOps::FillPlaceholders: the sampled tokens of a step become
// the next step's inputs on the GPU (async scheduling), so no step waits for the host to read
// them first. One thread per row or fill; both are a few hundred integers.
#include <cuda_runtime.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_device.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/op_checks.h"

namespace pagedllm::kernels {
namespace {

constexpr int kThreads = 256;

unsigned Blocks(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

__global__ void PickShardArgmaxKernel(const float* __restrict__ max_values,
                                      const int32_t* __restrict__ argmax, int64_t shards,
                                      int64_t rows, int64_t shard_cols,
                                      int32_t* __restrict__ token_ids) {
  const int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (p >= rows) return;
  int64_t best = 0;
  for (int64_t r = 1; r < shards; ++r) {
    // Strictly larger to move on: ties keep the lower shard, so the lower id.
    if (max_values[r * rows + p] > max_values[best * rows + p]) best = r;
  }
  token_ids[p] = static_cast<int32_t>(argmax[best * rows + p] + best * shard_cols);
}

// Fills outside either tensor are skipped (the CPU backend aborts on them; the worker's step
// state never makes one).
__global__ void FillPlaceholdersKernel(int32_t* __restrict__ token_ids, int64_t num_tokens,
                                       const int32_t* __restrict__ fills, int64_t num_fills,
                                       const int32_t* __restrict__ sampled, int64_t num_sampled) {
  const int64_t f = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (f >= num_fills) return;
  const int32_t to = fills[2 * f], from = fills[2 * f + 1];
  if (to < 0 || to >= num_tokens || from < 0 || from >= num_sampled) return;
  token_ids[to] = sampled[from];
}

}  // namespace

void CudaOps::PickShardArgmax(const Tensor& max_values, const Tensor& argmax, int64_t shard_cols,
                              const Tensor& token_ids) {
  CheckPickShardArgmaxArgs(device_, max_values, argmax, shard_cols, token_ids);
  const int64_t shards = max_values.dim(0), rows = max_values.dim(1);
  if (rows == 0) return;
  PickShardArgmaxKernel<<<Blocks(rows), kThreads, 0, stream()>>>(
      max_values.data<float>(), argmax.data<int32_t>(), shards, rows, shard_cols,
      token_ids.data<int32_t>());
  NoteLaunch("PickShardArgmax");
}

void CudaOps::FillPlaceholders(const Tensor& token_ids, const Tensor& fills,
                               const Tensor& sampled) {
  CheckFillPlaceholdersArgs(device_, token_ids, fills, sampled);
  const int64_t num_fills = fills.dim(0);
  if (num_fills == 0) return;
  FillPlaceholdersKernel<<<Blocks(num_fills), kThreads, 0, stream()>>>(
      token_ids.data<int32_t>(), token_ids.dim(0), fills.data<int32_t>(), num_fills,
      sampled.data<int32_t>(), sampled.dim(0));
  NoteLaunch("FillPlaceholders");
}

}  // namespace pagedllm::kernels
