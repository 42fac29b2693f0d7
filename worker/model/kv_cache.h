// This rank's slice of every KV block: per layer, a key and a value tensor of
// [num_blocks, block_size, num_kv_heads_local, head_dim]. Block ids are the coordinator's
// global ids; each rank holds the same blocks for its own KV heads. Move-only owner.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "kernels/device.h"

namespace pagedllm::worker {

class KvCache {
 public:
  static absl::StatusOr<KvCache> Create(kernels::Device& device, kernels::DType dtype,
                                        int num_layers, int num_blocks, int block_size,
                                        int num_kv_heads_local, int head_dim);
  KvCache(KvCache&&) = default;
  KvCache& operator=(KvCache&&) = default;
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  const kernels::Tensor& key(int layer) const { return keys_[layer]; }
  const kernels::Tensor& value(int layer) const { return values_[layer]; }
  int num_layers() const { return static_cast<int>(keys_.size()); }
  int num_blocks() const { return num_blocks_; }
  int block_size() const { return block_size_; }

  // Bytes one block takes over all layers, keys and values.
  static size_t BytesPerBlock(kernels::DType dtype, int num_layers, int block_size,
                              int num_kv_heads_local, int head_dim);

 private:
  KvCache() = default;
  std::vector<kernels::Tensor> keys_;
  std::vector<kernels::Tensor> values_;
  int num_blocks_ = 0;
  int block_size_ = 0;
};

}  // namespace pagedllm::worker
