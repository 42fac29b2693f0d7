// Runs PickShardArgmax and FillPlaceholders on any device, for the CPU test and the
// CUDA-against-CPU test.
#pragma once

#include <vector>

#include "kernels/device.h"
#include "kernels/ops.h"

namespace pagedllm::kernels {

// max_values and argmax: [shards, rows], row-major.
inline std::vector<int32_t> RunPickShardArgmax(Device& device, const std::vector<float>& max_values,
                                               const std::vector<int32_t>& argmax, int64_t shards,
                                               int64_t shard_cols) {
  const int64_t rows = static_cast<int64_t>(max_values.size()) / shards;
  Tensor values = *device.FromHost(DType::kFloat32, {shards, rows}, max_values);
  Tensor ids = *device.FromHost(DType::kInt32, {shards, rows}, argmax);
  Tensor tokens = *device.FromHost(DType::kInt32, {rows}, std::vector<int32_t>(rows, -7));
  device.ops().PickShardArgmax(values, ids, shard_cols, tokens);
  return device.ToHost<int32_t>(tokens);
}

// fills: (to, from) pairs.
inline std::vector<int32_t> RunFillPlaceholders(Device& device,
                                                const std::vector<int32_t>& token_ids,
                                                const std::vector<int32_t>& fills,
                                                const std::vector<int32_t>& sampled) {
  Tensor tokens =
      *device.FromHost(DType::kInt32, {static_cast<int64_t>(token_ids.size())}, token_ids);
  Tensor pairs =
      *device.FromHost(DType::kInt32, {static_cast<int64_t>(fills.size() / 2), 2}, fills);
  Tensor from = *device.FromHost(DType::kInt32, {static_cast<int64_t>(sampled.size())}, sampled);
  device.ops().FillPlaceholders(tokens, pairs, from);
  return device.ToHost<int32_t>(tokens);
}

}  // namespace pagedllm::kernels
