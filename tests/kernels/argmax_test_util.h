// Runs ArgmaxRows on any device, for the CPU test and the CUDA-against-CPU test.
#pragma once

#include <cmath>
#include <vector>

#include "kernels/device.h"
#include "kernels/ops.h"

namespace pagedllm::kernels {

struct ArgmaxResult {
  std::vector<float> values;
  std::vector<int32_t> ids;
};

inline ArgmaxResult RunArgmax(Device& device, DType dtype, const std::vector<float>& logits, int64_t rows,
                       int64_t cols, int64_t valid) {
  Tensor as_float = *device.FromHost(DType::kFloat32, {rows, cols}, logits);
  Tensor input = as_float;
  if (dtype != DType::kFloat32) {
    input = *device.Allocate(dtype, {rows, cols});
    device.ops().Cast(as_float, input);
  }
  Tensor values = *device.FromHost(DType::kFloat32, {rows}, std::vector<float>(rows, NAN));
  Tensor ids = *device.FromHost(DType::kInt32, {rows}, std::vector<int32_t>(rows, -7));
  device.ops().ArgmaxRows(input, valid, values, ids);
  return {device.ToHost<float>(values), device.ToHost<int32_t>(ids)};
}

}  // namespace pagedllm::kernels
