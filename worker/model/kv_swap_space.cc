#include "worker/model/kv_swap_space.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace pagedllm::worker {

absl::StatusOr<std::unique_ptr<KvSwapSpace>> KvSwapSpace::Create(kernels::Device& device,
                                                                 const KvCache& cache,
                                                                 int64_t num_blocks) {
  if (num_blocks < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("swap space: negative number of host blocks ", num_blocks));
  }
  std::unique_ptr<KvSwapSpace> space(new KvSwapSpace(device, num_blocks));
  if (num_blocks == 0) return space;
  space->block_bytes_ = cache.key(0).bytes() / static_cast<size_t>(cache.num_blocks());
  for (int layer = 0; layer < cache.num_layers(); ++layer) {
    const size_t bytes = space->block_bytes_ * static_cast<size_t>(num_blocks);
    PAGEDLLM_ASSIGN_OR_RETURN(void* keys, device.AllocatePinnedHost(bytes));
    space->keys_.push_back(keys);
    PAGEDLLM_ASSIGN_OR_RETURN(void* values, device.AllocatePinnedHost(bytes));
    space->values_.push_back(values);
  }
  return space;
}

KvSwapSpace::~KvSwapSpace() {
  // Copies still in flight may read or write these buffers.
  if (!keys_.empty()) device_.Synchronize();
  for (void* keys : keys_) device_.FreePinnedHost(keys);
  for (void* values : values_) device_.FreePinnedHost(values);
}

absl::Status KvSwapSpace::SwapOut(const KvCache& cache,
                                  absl::Span<const kernels::BlockSwap> swaps) {
  return Swap(cache, swaps, kernels::SwapDirection::kDeviceToHost);
}

absl::Status KvSwapSpace::SwapIn(const KvCache& cache, absl::Span<const kernels::BlockSwap> swaps) {
  return Swap(cache, swaps, kernels::SwapDirection::kHostToDevice);
}

absl::Status KvSwapSpace::Swap(const KvCache& cache, absl::Span<const kernels::BlockSwap> swaps,
                               kernels::SwapDirection direction) {
  if (swaps.empty()) return absl::OkStatus();
  PAGEDLLM_RETURN_IF_ERROR(
      kernels::CheckBlockSwaps(swaps, cache.num_blocks(), num_blocks_, direction));
  const size_t block_bytes = cache.key(0).bytes() / static_cast<size_t>(cache.num_blocks());
  if (cache.num_layers() != static_cast<int>(keys_.size()) || block_bytes != block_bytes_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "swap space of ", keys_.size(), " layers x ", block_bytes_,
        " bytes per block does not fit the cache's ", cache.num_layers(), " x ", block_bytes));
  }
  for (int layer = 0; layer < cache.num_layers(); ++layer) {
    kernels::SwapBlocks(device_, cache.key(layer), keys_[layer], swaps, direction);
    kernels::SwapBlocks(device_, cache.value(layer), values_[layer], swaps, direction);
  }
  return absl::OkStatus();
}

}  // namespace pagedllm::worker
