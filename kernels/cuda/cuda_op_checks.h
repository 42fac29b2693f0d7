// Argument checks of the CUDA ops beyond kernels/op_checks.h (which they reuse): the CUDA
// ops take any float dtype, so the checks name the one the call uses.
#pragma once

#include "common/check.h"
#include "kernels/op_checks.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/tensor.h"

namespace pagedllm::kernels::cuda {

// The kernels' FloatType of `tensor`'s dtype; aborts for int32.
inline FloatType ToFloatType(const char* op, const char* name, const Tensor& tensor) {
  switch (tensor.dtype()) {
    case DType::kFloat32:
      return FloatType::kFloat32;
    case DType::kBFloat16:
      return FloatType::kBFloat16;
    case DType::kFloat16:
      return FloatType::kFloat16;
    case DType::kInt32:
      break;
  }
  PAGEDLLM_CHECK(false, op, ": ", name, " must be float32, bfloat16 or float16, got ",
                 tensor.ShapeString());
}

}  // namespace pagedllm::kernels::cuda
