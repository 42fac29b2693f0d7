// Checking CUDA and cuBLAS return codes. Status-returning paths use PAGEDLLM_CUDA_RETURN_IF_ERROR;
// kernel launches inside ops (which return void; a failure there is a bug or a dead device) use
// PAGEDLLM_CUDA_CHECK, which aborts naming the call, the file and CUDA's error string.
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

}  // namespace pagedllm::kernels

#define PAGEDLLM_CUDA_RETURN_IF_ERROR(call)                                              \
  do {                                                                                   \
    ::absl::Status pagedllm_cuda_status_ = ::pagedllm::kernels::CudaStatus((call), #call); \
    if (!pagedllm_cuda_status_.ok()) return pagedllm_cuda_status_;                       \
  } while (0)

#define PAGEDLLM_CUDA_CHECK(call)                                                            \
  do {                                                                                       \
    const cudaError_t pagedllm_cuda_error_ = (call);                                         \
    PAGEDLLM_CHECK(pagedllm_cuda_error_ == cudaSuccess, #call, ": ",                         \
                   cudaGetErrorName(pagedllm_cuda_error_), ": ",                             \
                   cudaGetErrorString(pagedllm_cuda_error_));                                \
  } while (0)

#define PAGEDLLM_CUBLAS_CHECK(call)                                                              \
  do {                                                                                           \
    const cublasStatus_t pagedllm_cublas_status_ = (call);                                       \
    PAGEDLLM_CHECK(pagedllm_cublas_status_ == CUBLAS_STATUS_SUCCESS, #call, ": cuBLAS status ", \
                   static_cast<int>(pagedllm_cublas_status_));                                   \
  } while (0)
