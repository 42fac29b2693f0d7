#include "kernels/kv_swap.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace pagedllm::kernels {

std::vector<BlockRun> MergeBlockRuns(absl::Span<const BlockSwap> swaps) {
  std::vector<BlockRun> runs;
  for (const BlockSwap& swap : swaps) {
    if (!runs.empty()) {
      BlockRun& last = runs.back();
      if (swap.device_block == last.device_block + last.count &&
          swap.host_block == last.host_block + last.count) {
        ++last.count;
        continue;
      }
    }
    runs.push_back({swap.device_block, swap.host_block, 1});
  }
  return runs;
}

absl::Status CheckBlockSwaps(absl::Span<const BlockSwap> swaps, int64_t num_device_blocks,
                             int64_t num_host_blocks, SwapDirection direction) {
  const char* name = direction == SwapDirection::kDeviceToHost ? "swap out" : "swap in";
  absl::flat_hash_set<int32_t> destinations;
  for (const BlockSwap& swap : swaps) {
    if (swap.device_block < 0 || swap.device_block >= num_device_blocks) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": device block ", swap.device_block,
                                                     " is outside [0, ", num_device_blocks, ")"));
    }
    if (swap.host_block < 0 || swap.host_block >= num_host_blocks) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": host block ", swap.host_block,
                                                     " is outside [0, ", num_host_blocks, ")"));
    }
    const int32_t destination =
        direction == SwapDirection::kDeviceToHost ? swap.host_block : swap.device_block;
    if (!destinations.insert(destination).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": ", direction == SwapDirection::kDeviceToHost ? "host" : "device",
                       " block ", destination, " is a destination twice"));
    }
  }
  return absl::OkStatus();
}

void SwapBlocks(Device& device, const Tensor& device_cache, void* host_cache,
                absl::Span<const BlockSwap> swaps, SwapDirection direction) {
  const size_t block_bytes = device_cache.bytes() / static_cast<size_t>(device_cache.dim(0));
  char* device_base = static_cast<char*>(device_cache.raw_data());
  char* host_base = static_cast<char*>(host_cache);
  for (const BlockRun& run : MergeBlockRuns(swaps)) {
    char* on_device = device_base + static_cast<size_t>(run.device_block) * block_bytes;
    char* on_host = host_base + static_cast<size_t>(run.host_block) * block_bytes;
    const size_t bytes = static_cast<size_t>(run.count) * block_bytes;
    if (direction == SwapDirection::kDeviceToHost) {
      device.CopyDeviceToHost(on_host, on_device, bytes);
    } else {
      device.CopyPinnedHostToDevice(on_device, on_host, bytes);
    }
  }
}

}  // namespace pagedllm::kernels
