// Linear: y = x · weightᵀ through OpenBLAS sgemm.
#include <cblas.h>

#include <cstring>
#include <limits>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/op_checks.h"

namespace pagedllm::kernels::cpu {

// x: [m, k], weight: [n, k] (Hugging Face layout), y: [m, n]; all float32.
void CpuOps::Linear(const Tensor& x, const Tensor& weight, const Tensor& y) {
  constexpr const char* kOp = "Linear";
  CheckTensor(kOp, "x", x, device_, DType::kFloat32);
  CheckTensor(kOp, "weight", weight, device_, DType::kFloat32);
  CheckTensor(kOp, "y", y, device_, DType::kFloat32);
  CheckRank(kOp, "x", x, 2);
  CheckRank(kOp, "weight", weight, 2);
  CheckRank(kOp, "y", y, 2);
  const int64_t m = x.dim(0), k = x.dim(1), n = weight.dim(0);
  PAGEDLLM_CHECK(weight.dim(1) == k, kOp, ": x and weight disagree on k (",
                 DescribeTensors({{"x", &x}, {"weight", &weight}, {"y", &y}}), ")");
  PAGEDLLM_CHECK(y.dim(0) == m && y.dim(1) == n, kOp, ": y must be [m, n] = [", m, ", ", n, "] (",
                 DescribeTensors({{"x", &x}, {"weight", &weight}, {"y", &y}}), ")");
  constexpr int64_t kMaxBlasDim = std::numeric_limits<blasint>::max();
  PAGEDLLM_CHECK(m <= kMaxBlasDim && n <= kMaxBlasDim && k <= kMaxBlasDim, kOp,
                 ": dimensions exceed OpenBLAS's index type (",
                 DescribeTensors({{"x", &x}, {"weight", &weight}}), ")");
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum; sgemm may leave y untouched
    std::memset(y.raw_data(), 0, y.bytes());
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m),
              static_cast<blasint>(n), static_cast<blasint>(k), 1.0f, x.data<float>(),
              static_cast<blasint>(k), weight.data<float>(), static_cast<blasint>(k), 0.0f,
              y.data<float>(), static_cast<blasint>(n));
}

}  // namespace pagedllm::kernels::cpu
