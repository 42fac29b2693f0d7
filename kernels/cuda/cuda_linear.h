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

#include <cstdint>
#include <map>
#include <tuple>

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
  // in every run). Aborts if cuBLASLt offers no algorithm.
  const Plan& Get(int64_t m, int64_t n, int64_t k, DType dtype, int x_align, int w_align,
                  int y_align);

  size_t size() const { return plans_.size(); }

 private:
  using Key = std::tuple<int64_t, int64_t, int64_t, DType, int, int, int>;

  cublasLtHandle_t handle_;
  size_t workspace_bytes_;
  std::map<Key, Plan> plans_;
};

// The largest power of two <= 256 that divides the address.
int PointerAlignment(const void* pointer);

}  // namespace pagedllm::kernels::cuda
