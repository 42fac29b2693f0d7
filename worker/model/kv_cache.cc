#include "worker/model/kv_cache.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace pagedllm::worker {

absl::StatusOr<KvCache> KvCache::Create(kernels::Device& device, kernels::DType dtype,
                                        int num_layers, int num_blocks, int block_size,
                                        int num_kv_heads_local, int head_dim) {
  if (num_blocks <= 0 || block_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV cache needs positive num_blocks (", num_blocks, ") and block_size (", block_size, ")"));
  }
  KvCache cache;
  cache.num_blocks_ = num_blocks;
  cache.block_size_ = block_size;
  const std::vector<int64_t> shape = {num_blocks, block_size, num_kv_heads_local, head_dim};
  for (int layer = 0; layer < num_layers; ++layer) {
    PAGEDLLM_ASSIGN_OR_RETURN(kernels::Tensor key, device.Allocate(dtype, shape));
    PAGEDLLM_ASSIGN_OR_RETURN(kernels::Tensor value, device.Allocate(dtype, shape));
    cache.keys_.push_back(std::move(key));
    cache.values_.push_back(std::move(value));
  }
  return cache;
}

size_t KvCache::BytesPerBlock(kernels::DType dtype, int num_layers, int block_size,
                              int num_kv_heads_local, int head_dim) {
  return 2ull * num_layers * block_size * num_kv_heads_local * head_dim * kernels::DTypeSize(dtype);
}

}  // namespace pagedllm::worker
