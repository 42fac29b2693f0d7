// This rank's KV swap space: pinned host memory holding, per layer, keys and values for
// `num_blocks` host blocks laid out like the device cache's blocks. The coordinator owns the host
// block ids (as it owns the device ones); a step's swap-out list moves device blocks of preempted
// sequences here, its swap-in list moves them back before the sequences run again.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernels/kv_swap.h"
#include "worker/model/kv_cache.h"

namespace pagedllm::worker {

class KvSwapSpace {
 public:
  // `num_blocks` host blocks shaped like `cache`'s (0 gives an empty space that refuses every
  // swap). RESOURCE_EXHAUSTED when the pinned memory cannot be had.
  static absl::StatusOr<std::unique_ptr<KvSwapSpace>> Create(kernels::Device& device,
                                                             const KvCache& cache,
                                                             int64_t num_blocks);
  ~KvSwapSpace();
  KvSwapSpace(const KvSwapSpace&) = delete;
  KvSwapSpace& operator=(const KvSwapSpace&) = delete;

  int64_t num_blocks() const { return num_blocks_; }

  // Checks every pair (CheckBlockSwaps) before issuing any copy, then moves the blocks of every
  // layer's keys and values. Stream-ordered: a forward issued afterwards sees swapped-in blocks,
  // and device blocks swapped out may be overwritten by it.
  // `cache` is the one the space was made for (it may have moved since).
  absl::Status SwapOut(const KvCache& cache, absl::Span<const kernels::BlockSwap> swaps);
  absl::Status SwapIn(const KvCache& cache, absl::Span<const kernels::BlockSwap> swaps);

 private:
  KvSwapSpace(kernels::Device& device, int64_t num_blocks)
      : device_(device), num_blocks_(num_blocks) {}
  absl::Status Swap(const KvCache& cache, absl::Span<const kernels::BlockSwap> swaps,
                    kernels::SwapDirection direction);

  kernels::Device& device_;
  int64_t num_blocks_;
  size_t block_bytes_ = 0;     // one layer's keys (or values) of one block
  std::vector<void*> keys_;    // per layer: [num_blocks, block_size, kv_heads_local, head_dim]
  std::vector<void*> values_;  // the same
};

}  // namespace pagedllm::worker
