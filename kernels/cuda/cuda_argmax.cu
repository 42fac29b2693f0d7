// CudaOps::ArgmaxRows: greedy decoding on the GPU, so a greedy step copies one id per sequence
// to the host instead of [rows, vocab] logits. One block per row; ties go to the lowest column.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_device.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/op_checks.h"

namespace pagedllm::kernels {
namespace {

constexpr int kThreads = 512;

__device__ inline float ToFloat(float v) { return v; }
__device__ inline float ToFloat(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ inline float ToFloat(__half v) { return __half2float(v); }

// (value, column) with NaN as -inf; `a` wins unless `b` is larger, or equal at a lower column.
__device__ inline void Better(float& value, int& col, float other_value, int other_col) {
  if (other_value > value || (other_value == value && other_col < col)) {
    value = other_value;
    col = other_col;
  }
}

template <typename T>
__global__ void ArgmaxRowsKernel(const T* __restrict__ logits, int64_t cols, int64_t valid,
                                 float* __restrict__ max_values, int32_t* __restrict__ argmax) {
  const int64_t row = blockIdx.x;
  const T* x = logits + row * cols;
  float best = -INFINITY;
  int best_col = 0x7fffffff;
  for (int64_t c = threadIdx.x; c < valid; c += kThreads) {
    float v = ToFloat(x[c]);
    if (isnan(v)) v = -INFINITY;
    Better(best, best_col, v, static_cast<int>(c));
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other = __shfl_down_sync(0xffffffff, best, offset);
    const int other_col = __shfl_down_sync(0xffffffff, best_col, offset);
    Better(best, best_col, other, other_col);
  }
  __shared__ float warp_best[kThreads / 32];
  __shared__ int warp_col[kThreads / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    warp_best[warp] = best;
    warp_col[warp] = best_col;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w) Better(best, best_col, warp_best[w], warp_col[w]);
    max_values[row] = best;
    // No valid column, or all -inf/NaN: column 0 (as the CPU backend).
    argmax[row] = best_col == 0x7fffffff || best == -INFINITY ? 0 : best_col;
  }
}

}  // namespace

void CudaOps::ArgmaxRows(const Tensor& logits, int64_t num_valid_cols, const Tensor& max_values,
                         const Tensor& argmax) {
  constexpr const char* kOp = "ArgmaxRows";
  kernels::CheckOnDevice(kOp, "logits", logits, device_);
  kernels::CheckTensor(kOp, "max_values", max_values, device_, DType::kFloat32);
  kernels::CheckTensor(kOp, "argmax", argmax, device_, DType::kInt32);
  kernels::CheckRank(kOp, "logits", logits, 2);
  PAGEDLLM_CHECK(max_values.numel() == logits.dim(0) && argmax.numel() == logits.dim(0), kOp,
                 ": want logits: [rows, cols], max_values and argmax: [rows], got ",
                 logits.ShapeString(), ", ", max_values.ShapeString(), ", ", argmax.ShapeString());
  const int64_t rows = logits.dim(0), cols = logits.dim(1);
  if (rows == 0) return;
  const int64_t valid = num_valid_cols < 0 ? 0 : (num_valid_cols < cols ? num_valid_cols : cols);
  const dim3 grid(static_cast<unsigned>(rows));
  switch (logits.dtype()) {
    case DType::kFloat32:
      ArgmaxRowsKernel<<<grid, kThreads, 0, stream()>>>(
          logits.data<float>(), cols, valid, max_values.data<float>(), argmax.data<int32_t>());
      break;
    case DType::kBFloat16:
      ArgmaxRowsKernel<<<grid, kThreads, 0, stream()>>>(logits.data<__nv_bfloat16>(), cols, valid,
                                                        max_values.data<float>(),
                                                        argmax.data<int32_t>());
      break;
    case DType::kFloat16:
      ArgmaxRowsKernel<<<grid, kThreads, 0, stream()>>>(
          logits.data<__half>(), cols, valid, max_values.data<float>(), argmax.data<int32_t>());
      break;
    case DType::kInt32:
      PAGEDLLM_CHECK(false, kOp, ": logits must be a float tensor, got ", logits.ShapeString());
  }
  NoteLaunch(kOp);
}

}  // namespace pagedllm::kernels
