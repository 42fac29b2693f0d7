// Checking CUDA and cuBLAS return codes. Status-returning paths use PAGEDLLM_CUDA_RETURN_IF_ERROR
// and PAGEDLLM_CUBLAS_RETURN_IF_ERROR. Ops (which return void) record a failure a step can
// survive with CudaOps::Fail / NoteLaunch (see Ops::TakeFailure). PAGEDLLM_CUDA_CHECK, which
// aborts naming the call, the file and CUDA's error string, is left for setup and teardown.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace pagedllm::kernels {

inline absl::Status CudaStatus(cudaError_t error, const char* call) {
  if (error == cudaSuccess) return absl::OkStatus();
  const absl::StatusCode code = error == cudaErrorMemoryAllocation
                                    ? absl::StatusCode::kResourceExhausted
                                    : absl::StatusCode::kInternal;
  return absl::Status(code, absl::StrCat(call, " failed: ", cudaGetErrorName(error), ": ",
                                         cudaGetErrorString(error)));
}

inline absl::Status CublasStatus(cublasStatus_t status, const char* call) {
  if (status == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  const absl::StatusCode code = status == CUBLAS_STATUS_ALLOC_FAILED
                                    ? absl::StatusCode::kResourceExhausted
                                    : absl::StatusCode::kInternal;
  return absl::Status(code, absl::StrCat(call, " failed: cuBLAS status ", static_cast<int>(status),
                                         " (", cublasLtGetStatusName(status), ")"));
}

}  // namespace pagedllm::kernels

#define PAGEDLLM_CUBLAS_RETURN_IF_ERROR(call)                                                  \
  do {                                                                                         \
    ::absl::Status pagedllm_cublas_status_ = ::pagedllm::kernels::CublasStatus((call), #call); \
    if (!pagedllm_cublas_status_.ok()) return pagedllm_cublas_status_;                         \
  } while (0)

#define PAGEDLLM_CUDA_RETURN_IF_ERROR(call)                                                \
  do {                                                                                     \
    ::absl::Status pagedllm_cuda_status_ = ::pagedllm::kernels::CudaStatus((call), #call); \
    if (!pagedllm_cuda_status_.ok()) return pagedllm_cuda_status_;                         \
  } while (0)

#define PAGEDLLM_CUDA_CHECK(call)                                    \
  do {                                                               \
    const cudaError_t pagedllm_cuda_error_ = (call);                 \
    PAGEDLLM_CHECK(pagedllm_cuda_error_ == cudaSuccess, #call, ": ", \
                   cudaGetErrorName(pagedllm_cuda_error_), ": ",     \
                   cudaGetErrorString(pagedllm_cuda_error_));        \
  } while (0)

#define PAGEDLLM_CUBLAS_CHECK(call)                                                             \
  do {                                                                                          \
    const cublasStatus_t pagedllm_cublas_status_ = (call);                                      \
    PAGEDLLM_CHECK(pagedllm_cublas_status_ == CUBLAS_STATUS_SUCCESS, #call, ": cuBLAS status ", \
                   static_cast<int>(pagedllm_cublas_status_));                                  \
  } while (0)
