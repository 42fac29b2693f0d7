// Swapping KV-cache blocks between a device cache tensor and pinned host memory (the swap space
// behind preemption by swapping, as in vLLM's swap_blocks): DMA copies on the device's stream,
// one per run of consecutive block ids, so a sequence's mostly contiguous blocks move in a few
// large transfers instead of one small one per block.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "kernels/device.h"

namespace pagedllm::kernels {

struct BlockSwap {
  int32_t device_block = 0;
  int32_t host_block = 0;
};

enum class SwapDirection : int8_t {
  kDeviceToHost,  // swap out
  kHostToDevice,  // swap in
};

// Consecutive pairs (device + 1 and host + 1 both) merged into runs, in the given order.
struct BlockRun {
  int32_t device_block = 0;
  int32_t host_block = 0;
  int32_t count = 0;
};
std::vector<BlockRun> MergeBlockRuns(absl::Span<const BlockSwap> swaps);

// OK, or INVALID_ARGUMENT naming the first pair whose ids fall outside [0, num_device_blocks) /
// [0, num_host_blocks), or a destination block named twice (the copies would race).
absl::Status CheckBlockSwaps(absl::Span<const BlockSwap> swaps, int64_t num_device_blocks,
                             int64_t num_host_blocks, SwapDirection direction);

// Copies whole blocks between `device_cache` ([num_device_blocks, ...], any dtype, block-major)
// and `host_cache`, pinned host memory laid out the same way ([num_host_blocks, ...], from
// Device::AllocatePinnedHost). Issued on the device's stream and not waited for: the
// device-to-host copies are complete after Synchronize(); host memory being read must not change
// before then. The pairs must have passed CheckBlockSwaps.
void SwapBlocks(Device& device, const Tensor& device_cache, void* host_cache,
                absl::Span<const BlockSwap> swaps, SwapDirection direction);

}  // namespace pagedllm::kernels
