// Row-wise float32 ops: RmsNorm, AddRmsNorm (as Hugging Face LlamaRMSNorm) and SiluAndMul.
#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/op_checks.h"

namespace pagedllm::kernels::cpu {
namespace {

// Rows per parallel chunk so a chunk holds at least ~16k elements.
int64_t RowGrain(int64_t row_elements) {
  constexpr int64_t kChunkElements = 1 << 14;
  return row_elements >= kChunkElements ? 1 : kChunkElements / (row_elements + 1) + 1;
}

// out[i] = x[i] * rsqrt(mean(x²) + eps) * weight[i], in float32 like Hugging Face:
// variance = x.pow(2).mean(-1); x * torch.rsqrt(variance + eps); weight * that.
// The sum of squares is accumulated in double, which is at least as accurate as PyTorch's
// float reduction. `out` may alias `x`.
void RmsNormRow(const float* x, const float* weight, float eps, int64_t hidden, float* out) {
  double sum_squares = 0.0;
  for (int64_t i = 0; i < hidden; ++i) sum_squares += static_cast<double>(x[i]) * x[i];
  const float variance = static_cast<float>(sum_squares / static_cast<double>(hidden));
  const float inv_rms = 1.0f / std::sqrt(variance + eps);
  for (int64_t i = 0; i < hidden; ++i) out[i] = weight[i] * (x[i] * inv_rms);
}

// Checks x/out: [n, hidden], weight: [hidden]; returns hidden.
int64_t CheckNormArgs(const char* op, const Device* device, const Tensor& x, const Tensor& weight,
                      const Tensor& out) {
  CheckTensor(op, "x", x, device, DType::kFloat32);
  CheckTensor(op, "weight", weight, device, DType::kFloat32);
  CheckTensor(op, "out", out, device, DType::kFloat32);
  CheckRank(op, "x", x, 2);
  CheckRank(op, "weight", weight, 1);
  PAGEDLLM_CHECK(weight.dim(0) == x.dim(1) && out.shape() == x.shape(), op,
                 ": want x, out: [n, hidden], weight: [hidden] (",
                 DescribeTensors({{"x", &x}, {"weight", &weight}, {"out", &out}}), ")");
  return x.dim(1);
}

}  // namespace

// x, out: [n, hidden], weight: [hidden].
void CpuOps::RmsNorm(const Tensor& x, const Tensor& weight, float eps, const Tensor& out) {
  const int64_t hidden = CheckNormArgs("RmsNorm", device_, x, weight, out);
  const float* x_data = x.data<float>();
  const float* w = weight.data<float>();
  float* out_data = out.data<float>();
  pool_->ParallelForRange(x.dim(0), RowGrain(hidden), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      RmsNormRow(x_data + r * hidden, w, eps, hidden, out_data + r * hidden);
    }
  });
}

// x, residual, out: [n, hidden], weight: [hidden]. residual += x; out = RmsNorm(residual).
// out may alias x or residual.
void CpuOps::AddRmsNorm(const Tensor& x, const Tensor& residual, const Tensor& weight, float eps,
                        const Tensor& out) {
  constexpr const char* kOp = "AddRmsNorm";
  const int64_t hidden = CheckNormArgs(kOp, device_, x, weight, out);
  CheckTensor(kOp, "residual", residual, device_, DType::kFloat32);
  PAGEDLLM_CHECK(residual.shape() == x.shape(), kOp, ": residual must match x (",
                 DescribeTensors({{"x", &x}, {"residual", &residual}}), ")");
  const float* x_data = x.data<float>();
  float* residual_data = residual.data<float>();
  const float* w = weight.data<float>();
  float* out_data = out.data<float>();
  pool_->ParallelForRange(x.dim(0), RowGrain(hidden), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* res = residual_data + r * hidden;
      const float* xr = x_data + r * hidden;
      for (int64_t i = 0; i < hidden; ++i) res[i] += xr[i];
      RmsNormRow(res, w, eps, hidden, out_data + r * hidden);
    }
  });
}

// gate_up: [n, 2 * intermediate] = [gate | up], out: [n, intermediate].
// out = silu(gate) * up with silu(g) = g / (1 + exp(-g)).
void CpuOps::SiluAndMul(const Tensor& gate_up, const Tensor& out) {
  constexpr const char* kOp = "SiluAndMul";
  CheckTensor(kOp, "gate_up", gate_up, device_, DType::kFloat32);
  CheckTensor(kOp, "out", out, device_, DType::kFloat32);
  CheckRank(kOp, "gate_up", gate_up, 2);
  CheckRank(kOp, "out", out, 2);
  const int64_t n = gate_up.dim(0), intermediate = out.dim(1);
  PAGEDLLM_CHECK(out.dim(0) == n && gate_up.dim(1) == 2 * intermediate, kOp,
                 ": want gate_up: [n, 2 * intermediate], out: [n, intermediate] (",
                 DescribeTensors({{"gate_up", &gate_up}, {"out", &out}}), ")");
  const float* in = gate_up.data<float>();
  float* out_data = out.data<float>();
  pool_->ParallelForRange(n, RowGrain(intermediate), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* gate = in + r * 2 * intermediate;
      const float* up = gate + intermediate;
      float* o = out_data + r * intermediate;
      for (int64_t i = 0; i < intermediate; ++i) {
        o[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
      }
    }
  });
}

}  // namespace pagedllm::kernels::cpu
