// Linear: y = x · weightᵀ for float32, bfloat16 and float16 with float32 accumulation, through
// the GEMV kernel (cuda_gemv.cu) for bf16/fp16 at m <= 2 and cuBLASLt otherwise (see
// cuda_linear.h for the column-major mapping).
#include "kernels/cuda/cuda_linear.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_device.h"
#include "kernels/cuda/cuda_op_checks.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/op_checks.h"

namespace pagedllm::kernels {
namespace cuda {
namespace {

cudaDataType_t CudaDataType(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return CUDA_R_32F;
    case DType::kBFloat16:
      return CUDA_R_16BF;
    case DType::kFloat16:
      return CUDA_R_16F;
    case DType::kInt32:
      break;
  }
  PAGEDLLM_CHECK(false, "Linear: no cuBLASLt type for ", DTypeName(dtype));
}

template <typename T>
absl::Status SetPreference(cublasLtMatmulPreference_t preference,
                           cublasLtMatmulPreferenceAttributes_t attribute, T value) {
  PAGEDLLM_CUBLAS_RETURN_IF_ERROR(
      cublasLtMatmulPreferenceSetAttribute(preference, attribute, &value, sizeof(value)));
  return absl::OkStatus();
}

void DestroyPlan(const LinearPlans::Plan& plan) {
  if (plan.w_layout != nullptr) cublasLtMatrixLayoutDestroy(plan.w_layout);
  if (plan.x_layout != nullptr) cublasLtMatrixLayoutDestroy(plan.x_layout);
  if (plan.y_layout != nullptr) cublasLtMatrixLayoutDestroy(plan.y_layout);
  if (plan.desc != nullptr) cublasLtMatmulDescDestroy(plan.desc);
}

}  // namespace

int PointerAlignment(const void* pointer) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(pointer);
  int alignment = 256;
  while (alignment > 1 && address % static_cast<uintptr_t>(alignment) != 0) alignment /= 2;
  return alignment;
}

bool GemvEnabled() {
  static const bool enabled = [] {
    const char* value = std::getenv("PAGEDLLM_CUDA_GEMV");
    return value == nullptr || std::strcmp(value, "0") != 0;
  }();
  return enabled;
}

LinearPlans::~LinearPlans() {
  // Destruction happens at shutdown: report nothing, leak nothing we can free.
  for (auto& [key, plan] : plans_) DestroyPlan(plan);
}

absl::StatusOr<const LinearPlans::Plan*> LinearPlans::Get(int64_t m, int64_t n, int64_t k,
                                                          DType dtype, int x_align, int w_align,
                                                          int y_align) {
  const Key key{m, n, k, dtype, x_align, w_align, y_align};
  if (auto it = plans_.find(key); it != plans_.end()) return &it->second;

  Plan plan;
  cublasLtMatmulPreference_t preference = nullptr;
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const absl::Status made = [&]() -> absl::Status {
    const cudaDataType_t type = CudaDataType(dtype);
    PAGEDLLM_CUBLAS_RETURN_IF_ERROR(
        cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t transpose = CUBLAS_OP_T, no_transpose = CUBLAS_OP_N;
    PAGEDLLM_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
        plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof(transpose)));
    PAGEDLLM_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
        plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &no_transpose, sizeof(no_transpose)));
    PAGEDLLM_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&plan.w_layout, type, k, n, k));
    PAGEDLLM_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&plan.x_layout, type, k, m, k));
    PAGEDLLM_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&plan.y_layout, type, n, m, n));
    PAGEDLLM_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(&preference));
    PAGEDLLM_RETURN_IF_ERROR(SetPreference<uint64_t>(
        preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, workspace_bytes_));
    // Split-K partial sums in float32 only: the output-type schemes (INPLACE, OUTPUT_TYPE) would
    // round each partial sum to bf16/fp16.
    PAGEDLLM_RETURN_IF_ERROR(SetPreference<uint32_t>(
        preference, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
        CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE));
    PAGEDLLM_RETURN_IF_ERROR(
        SetPreference<uint32_t>(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, w_align));
    PAGEDLLM_RETURN_IF_ERROR(
        SetPreference<uint32_t>(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, x_align));
    PAGEDLLM_RETURN_IF_ERROR(
        SetPreference<uint32_t>(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, y_align));
    PAGEDLLM_RETURN_IF_ERROR(
        SetPreference<uint32_t>(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, y_align));
    PAGEDLLM_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulAlgoGetHeuristic(
        handle_, plan.desc, plan.w_layout, plan.x_layout, plan.y_layout, plan.y_layout, preference,
        1, &result, &found));
    if (found == 0) {
      return absl::InternalError(absl::StrCat(
          "Linear: cuBLASLt has no algorithm for m=", m, " n=", n, " k=", k, " ", DTypeName(dtype),
          " (alignments x ", x_align, ", weight ", w_align, ", y ", y_align, " bytes)"));
    }
    return absl::OkStatus();
  }();
  if (preference != nullptr) cublasLtMatmulPreferenceDestroy(preference);
  if (!made.ok()) {
    DestroyPlan(plan);
    return made;
  }
  plan.algo = result.algo;
  return &plans_.emplace(key, plan).first->second;
}

}  // namespace cuda

// x: [m, k], weight: [n, k] (Hugging Face layout), y: [m, n]; one float dtype for all three.
void CudaOps::Linear(const Tensor& x, const Tensor& weight, const Tensor& y) {
  constexpr const char* kOp = "Linear";
  const DType dtype = x.dtype();
  kernels::CheckOnDevice(kOp, "x", x, device_);
  PAGEDLLM_CHECK(dtype != DType::kInt32, kOp, ": x must be a float tensor, got ", x.ShapeString());
  kernels::CheckTensor(kOp, "weight", weight, device_, dtype);
  kernels::CheckTensor(kOp, "y", y, device_, dtype);
  kernels::CheckRank(kOp, "x", x, 2);
  kernels::CheckRank(kOp, "weight", weight, 2);
  kernels::CheckRank(kOp, "y", y, 2);
  const int64_t m = x.dim(0), k = x.dim(1), n = weight.dim(0);
  PAGEDLLM_CHECK(weight.dim(1) == k, kOp, ": x and weight disagree on k (",
                 kernels::DescribeTensors({{"x", &x}, {"weight", &weight}, {"y", &y}}), ")");
  PAGEDLLM_CHECK(y.dim(0) == m && y.dim(1) == n, kOp, ": y must be [m, n] = [", m, ", ", n, "] (",
                 kernels::DescribeTensors({{"x", &x}, {"weight", &weight}, {"y", &y}}), ")");
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum
    NoteCall(kOp, cudaMemsetAsync(y.raw_data(), 0, y.bytes(), stream()));
    return;
  }
  if (dtype != DType::kFloat32 && m <= cuda::kGemvLinearMaxRows && cuda::GemvEnabled() &&
      cuda::LaunchGemv(cuda::ToFloatType(kOp, "x", x), x.raw_data(), weight.raw_data(),
                       y.raw_data(), m, n, k, stream())) {
    NoteLaunch(kOp);
    return;  // decode-sized m: the memory-bound GEMV, no cuBLASLt fixed cost
  }
  const absl::StatusOr<const cuda::LinearPlans::Plan*> plan = linear_plans_->Get(
      m, n, k, dtype, cuda::PointerAlignment(x.raw_data()),
      cuda::PointerAlignment(weight.raw_data()), cuda::PointerAlignment(y.raw_data()));
  if (!plan.ok()) {
    Fail(plan.status());
    return;
  }
  const float alpha = 1.0f, beta = 0.0f;
  const cublasStatus_t status = cublasLtMatmul(
      cublas_, (*plan)->desc, &alpha, weight.raw_data(), (*plan)->w_layout, x.raw_data(),
      (*plan)->x_layout, &beta, y.raw_data(), (*plan)->y_layout, y.raw_data(), (*plan)->y_layout,
      &(*plan)->algo, cublas_workspace_, cublas_workspace_bytes_, stream());
  if (status != CUBLAS_STATUS_SUCCESS) {
    const absl::Status failure = CublasStatus(status, "cublasLtMatmul");
    Fail(absl::Status(failure.code(),
                      absl::StrCat(kOp, ": x [", m, ", ", k, "], weight [", n, ", ", k, "] ",
                                   DTypeName(dtype), ": ", failure.message())));
  }
}

}  // namespace pagedllm::kernels
