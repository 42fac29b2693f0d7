// KV-cache maintenance: WriteKvCache (scatter this step's keys and values into their slots)
// and CopyBlocks (copy-on-write). Plain byte copies, so any dtype works as long as the
// tensors involved agree.
#include <cstring>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/op_checks.h"

namespace pagedllm::kernels::cpu {

// key, value: [n, num_kv_heads, head_dim], slot_mapping: [n] int32,
// key_cache, value_cache: [num_blocks, block_size, num_kv_heads, head_dim].
void CpuOps::WriteKvCache(const Tensor& key, const Tensor& value, const Tensor& slot_mapping,
                          const Tensor& key_cache, const Tensor& value_cache) {
  CheckWriteKvCacheArgs(device_, key, value, slot_mapping, key_cache, value_cache);
  const int64_t num_slots = key_cache.dim(0) * key_cache.dim(1);
  const size_t row_bytes = static_cast<size_t>(key.dim(1) * key.dim(2)) * DTypeSize(key.dtype());
  const int32_t* slots = slot_mapping.data<int32_t>();
  const char* key_data = static_cast<const char*>(key.raw_data());
  const char* value_data = static_cast<const char*>(value.raw_data());
  char* key_cache_data = static_cast<char*>(key_cache.raw_data());
  char* value_cache_data = static_cast<char*>(value_cache.raw_data());
  for (int64_t i = 0; i < key.dim(0); ++i) {
    const int64_t slot = slots[i];
    if (slot < 0) continue;  // a padding token
    PAGEDLLM_CHECK(slot < num_slots, "WriteKvCache: slot_mapping[", i, "] = ", slot,
                   " is outside the cache's ", num_slots, " slots (key_cache ",
                   key_cache.ShapeString(), ")");
    std::memcpy(key_cache_data + slot * row_bytes, key_data + i * row_bytes, row_bytes);
    std::memcpy(value_cache_data + slot * row_bytes, value_data + i * row_bytes, row_bytes);
  }
}

// cache: [num_blocks, ...], pairs: [num_pairs, 2] int32 of (src, dst). Pairs are applied in
// order; callers keep destinations distinct from sources (the CUDA kernel copies in parallel).
void CpuOps::CopyBlocks(const Tensor& cache, const Tensor& pairs) {
  constexpr const char* kOp = "CopyBlocks";
  const size_t block_bytes = CheckCopyBlocksArgs(device_, cache, pairs);
  const int64_t num_blocks = cache.dim(0);
  const int32_t* pair_data = pairs.data<int32_t>();
  char* data = static_cast<char*>(cache.raw_data());
  for (int64_t i = 0; i < pairs.dim(0); ++i) {
    const int64_t src = pair_data[2 * i], dst = pair_data[2 * i + 1];
    PAGEDLLM_CHECK(src >= 0 && src < num_blocks && dst >= 0 && dst < num_blocks, kOp, ": pair ", i,
                   " (", src, " -> ", dst, ") is outside the cache's ", num_blocks,
                   " blocks (cache ", cache.ShapeString(), ")");
    if (src != dst) std::memcpy(data + dst * block_bytes, data + src * block_bytes, block_bytes);
  }
}

}  // namespace pagedllm::kernels::cpu
