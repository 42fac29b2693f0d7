// LinearPlans: cuBLASLt descriptors and the heuristic's algorithm for each GEMM shape that
// CudaOps::Linear has seen, so a forward pass queries the heuristic once per shape, not per call.
//
// Row-major y[m, n] = x[m, k] · w[n, k]ᵀ is, read column-major, yᵀ[n, m] = w[k, n]ᵀ · xᵀ[k, m]:
// A = w (k x n, ld k, transposed), B = x (k x m, ld k), C = D = y (n x m, ld n). Every dtype
// accumulates in float32 (CUBLAS_COMPUTE_32F; for float32 that also rules out TF32), and split-K
// partial sums are reduced in float32 too (the output-type reduction schemes are excluded), so a
// bf16/fp16 result is rounded once. Owned by CudaOps; not thread safe.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <tuple>

#include "absl/status/statusor.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/tensor.h"

namespace pagedllm::kernels::cuda {

class LinearPlans {
 public:
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t w_layout = nullptr;  // A
    cublasLtMatrixLayout_t x_layout = nullptr;  // B
    cublasLtMatrixLayout_t y_layout = nullptr;  // C and D
    cublasLtMatmulAlgo_t algo{};
  };

  // The handle is not owned; cuBLASLt may use up to `workspace_bytes` of workspace.
  LinearPlans(cublasLtHandle_t handle, size_t workspace_bytes)
      : handle_(handle), workspace_bytes_(workspace_bytes) {}
  ~LinearPlans();
  LinearPlans(const LinearPlans&) = delete;
  LinearPlans& operator=(const LinearPlans&) = delete;

  // The plan for this shape and dtype, given the alignment (a power of two <= 256) of each base
  // pointer; made and cached on first use with the heuristic's first choice (the same algorithm
  // in every run). INTERNAL when cuBLASLt fails or offers no algorithm (nothing is cached then).
  absl::StatusOr<const Plan*> Get(int64_t m, int64_t n, int64_t k, DType dtype, int x_align,
                                  int w_align, int y_align);

  size_t size() const { return plans_.size(); }

 private:
  using Key = std::tuple<int64_t, int64_t, int64_t, DType, int, int, int>;

  cublasLtHandle_t handle_;
  size_t workspace_bytes_;
  std::map<Key, Plan> plans_;
};

// The largest power of two <= 256 that divides the address.
int PointerAlignment(const void* pointer);

// GEMV for small batches (cuda_gemv.cu) -----------------------------------------------------
// y[m, n] = x[m, k] · w[n, k]ᵀ without cuBLASLt: each warp streams a few rows of w with 16-byte
// loads, accumulates in float32 and rounds each y element once. Handles m <= kGemvMaxRows;
// CudaOps::Linear uses it for bf16/fp16 at m <= kGemvLinearMaxRows, where it beat cuBLASLt at
// every Llama-3-8B shape on the H100 (benchmarks/RESULTS.md, "GEMV for small batches"): 4-14%
// faster at m = 1 and 2, but at m = 4 only on two of the four shapes and at m = 8 on none
// (6-30% slower), as its loads are not pipelined across steps.

constexpr int64_t kGemvMaxRows = 8;
constexpr int64_t kGemvLinearMaxRows = 2;

// True when LaunchGemv handles this call: bfloat16 or float16, 1 <= m <= kGemvMaxRows, n, k >= 1,
// k a multiple of 8 and x, w 16-byte aligned (y may have any alignment).
bool GemvApplies(FloatType dtype, const void* x, const void* w, int64_t m, int64_t n, int64_t k);

// Enqueues the GEMV on `stream` and returns true, or returns false (enqueuing nothing) when
// GemvApplies does not hold. x: [m, k], w: [n, k], y: [m, n], all contiguous. No workspace, no
// synchronisation: capturable in a CUDA graph.
bool LaunchGemv(FloatType dtype, const void* x, const void* w, void* y, int64_t m, int64_t n,
                int64_t k, cudaStream_t stream);

// False when the environment sets PAGEDLLM_CUDA_GEMV=0 (read once), so that Linear uses cuBLASLt
// at every m: for A/B measurements.
bool GemvEnabled();

}  // namespace pagedllm::kernels::cuda
