// CudaOps: construction (cuBLASLt handle, workspaces) and the row-wise ops RmsNorm, AddRmsNorm,
// SiluAndMul and RopeQkv: shape checks here, kernels in cuda_norm.cu and cuda_rope.cu.
#include "kernels/cuda/cuda_ops.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_device.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/cuda_linear.h"
#include "kernels/cuda/cuda_op_checks.h"
#include "kernels/op_checks.h"

namespace pagedllm::kernels {
namespace {

// cuBLASLt's workspace: enough for the split-K and stream-K algorithms of large GEMMs.
constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;

using kernels::CheckOnDevice;
using kernels::CheckRank;
using kernels::CheckRopeQkvArgs;
using kernels::CheckTensor;
using kernels::DescribeTensors;

// Checks x/out: [n, hidden], weight: [hidden], one float dtype; returns that dtype.
cuda::FloatType CheckNormArgs(const char* op, const Device* device, const Tensor& x,
                              const Tensor& weight, const Tensor& out) {
  CheckOnDevice(op, "x", x, device);
  const cuda::FloatType type = cuda::ToFloatType(op, "x", x);
  CheckTensor(op, "weight", weight, device, x.dtype());
  CheckTensor(op, "out", out, device, x.dtype());
  CheckRank(op, "x", x, 2);
  CheckRank(op, "weight", weight, 1);
  PAGEDLLM_CHECK(weight.dim(0) == x.dim(1) && out.shape() == x.shape(), op,
                 ": want x, out: [n, hidden], weight: [hidden] (",
                 DescribeTensors({{"x", &x}, {"weight", &weight}, {"out", &out}}), ")");
  return type;
}

}  // namespace

CudaOps::CudaOps(CudaDevice* device) : device_(device) {
  PAGEDLLM_CUBLAS_CHECK(cublasLtCreate(&cublas_));
  PAGEDLLM_CUDA_CHECK(cudaMalloc(&cublas_workspace_, kCublasWorkspaceBytes));
  cublas_workspace_bytes_ = kCublasWorkspaceBytes;
  linear_plans_ = std::make_unique<cuda::LinearPlans>(cublas_, cublas_workspace_bytes_);
}

CudaOps::~CudaOps() {
  // The device synchronises its stream before destroying us; failures here are not actionable.
  linear_plans_.reset();
  if (workspace_ != nullptr) cudaFree(workspace_);
  for (void* outgrown : outgrown_workspaces_) cudaFree(outgrown);
  if (cublas_workspace_ != nullptr) cudaFree(cublas_workspace_);
  if (cublas_ != nullptr) cublasLtDestroy(cublas_);
}

cudaStream_t CudaOps::stream() const { return device_->stream(); }

absl::Status CudaOps::TakeFailure() {
  absl::Status failure = Ops::TakeFailure();
  // A launch whose op did not note it, or an asynchronous error of an earlier kernel.
  const cudaError_t pending = cudaGetLastError();
  if (failure.ok() && pending != cudaSuccess) failure = CudaStatus(pending, "a kernel launch");
  return failure;
}

void CudaOps::NoteLaunch(const char* op) { NoteCall(op, cudaGetLastError()); }

void CudaOps::NoteCall(const char* op, cudaError_t error) {
  if (error != cudaSuccess) Fail(CudaStatus(error, op));
}

void* CudaOps::Workspace(size_t bytes) {
  if (bytes <= workspace_bytes_) return workspace_;
  constexpr size_t kGranule = size_t{1} << 20;
  const size_t rounded =
      std::max((bytes + kGranule - 1) / kGranule * kGranule, 2 * workspace_bytes_);
  void* grown = nullptr;
  if (const cudaError_t error = cudaMalloc(&grown, rounded); error != cudaSuccess) {
    Fail(absl::Status(CudaStatus(error, "cudaMalloc").code(),
                      absl::StrCat("no GPU memory for ", rounded, " bytes of op workspace (",
                                   workspace_bytes_, " held): ", cudaGetErrorString(error))));
    return nullptr;
  }
  if (workspace_ != nullptr) outgrown_workspaces_.push_back(workspace_);
  workspace_ = grown;
  workspace_bytes_ = rounded;
  return workspace_;
}

// x, out: [n, hidden], weight: [hidden].
void CudaOps::RmsNorm(const Tensor& x, const Tensor& weight, float eps, const Tensor& out) {
  cuda::RmsNormArgs args;
  args.dtype = CheckNormArgs("RmsNorm", device_, x, weight, out);
  args.x = x.raw_data();
  args.weight = weight.raw_data();
  args.out = out.raw_data();
  args.rows = x.dim(0);
  args.hidden = x.dim(1);
  args.eps = eps;
  cuda::LaunchRmsNorm(args, stream());
  NoteLaunch("RmsNorm");
}

// x, residual, out: [n, hidden], weight: [hidden]. residual += x; out = RmsNorm(residual).
// out may alias x or residual.
void CudaOps::AddRmsNorm(const Tensor& x, const Tensor& residual, const Tensor& weight, float eps,
                         const Tensor& out) {
  constexpr const char* kOp = "AddRmsNorm";
  cuda::RmsNormArgs args;
  args.dtype = CheckNormArgs(kOp, device_, x, weight, out);
  CheckTensor(kOp, "residual", residual, device_, x.dtype());
  PAGEDLLM_CHECK(residual.shape() == x.shape(), kOp, ": residual must match x (",
                 DescribeTensors({{"x", &x}, {"residual", &residual}}), ")");
  args.x = x.raw_data();
  args.residual = residual.raw_data();
  args.weight = weight.raw_data();
  args.out = out.raw_data();
  args.rows = x.dim(0);
  args.hidden = x.dim(1);
  args.eps = eps;
  cuda::LaunchRmsNorm(args, stream());
  NoteLaunch("AddRmsNorm");
}

// gate_up: [n, 2 * intermediate] = [gate | up], out: [n, intermediate].
void CudaOps::SiluAndMul(const Tensor& gate_up, const Tensor& out) {
  constexpr const char* kOp = "SiluAndMul";
  CheckOnDevice(kOp, "gate_up", gate_up, device_);
  const cuda::FloatType type = cuda::ToFloatType(kOp, "gate_up", gate_up);
  CheckTensor(kOp, "out", out, device_, gate_up.dtype());
  CheckRank(kOp, "gate_up", gate_up, 2);
  CheckRank(kOp, "out", out, 2);
  const int64_t n = gate_up.dim(0), intermediate = out.dim(1);
  PAGEDLLM_CHECK(out.dim(0) == n && gate_up.dim(1) == 2 * intermediate, kOp,
                 ": want gate_up: [n, 2 * intermediate], out: [n, intermediate] (",
                 DescribeTensors({{"gate_up", &gate_up}, {"out", &out}}), ")");
  cuda::LaunchSiluAndMul(type, gate_up.raw_data(), out.raw_data(), n, intermediate, stream());
  NoteLaunch("SiluAndMul");
}

// qkv: [num_tokens, (num_heads + 2 * num_kv_heads) * head_dim] = [q | k | v] per token,
// positions: [num_tokens] int32, inv_freq: [head_dim / 2] float32,
// query: [num_tokens, num_heads, head_dim], key/value: [num_tokens, num_kv_heads, head_dim].
void CudaOps::RopeQkv(const RopeQkvParams& p) {
  constexpr const char* kOp = "RopeQkv";
  CheckOnDevice(kOp, "qkv", p.qkv, device_);
  const cuda::FloatType type = cuda::ToFloatType(kOp, "qkv", p.qkv);
  CheckRopeQkvArgs(device_, p, p.qkv.dtype());
  const int64_t num_tokens = p.qkv.dim(0);
  const int64_t num_heads = p.query.dim(1), num_kv_heads = p.key.dim(1);
  const int64_t head_dim = p.query.dim(2);
  cuda::RopeQkvArgs args;
  args.dtype = type;
  args.qkv = p.qkv.raw_data();
  args.positions = p.positions.data<int32_t>();
  args.inv_freq = p.inv_freq.data<float>();
  args.query = p.query.raw_data();
  args.key = p.key.raw_data();
  args.value = p.value.raw_data();
  args.num_tokens = num_tokens;
  args.num_heads = num_heads;
  args.num_kv_heads = num_kv_heads;
  args.head_dim = head_dim;
  cuda::LaunchRopeQkv(args, stream());
  NoteLaunch("RopeQkv");
}

}  // namespace pagedllm::kernels
