// Block swapping between GPU blocks and pinned host blocks (kernels/kv_swap.h on CudaDevice):
// round trips, and the achieved PCIe bandwidth of a swap of Llama-3-8B-sized blocks against one
// large pinned copy of the same bytes (the floor; printed, not asserted).
#include <chrono>
#include <cstdio>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/kv_swap.h"
#include "tests/kernels/cuda/cuda_test_util.h"
#include "tests/kernels/kv_swap_test_util.h"

namespace pagedllm::kernels {
namespace {

using cuda_test::Gpu;

TEST(CudaKvSwap, RoundTrips) {
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    test_util::CheckSwapRoundTrip(Gpu(), /*num_blocks=*/64, /*block_elems=*/4096 + 13 * seed,
                                  /*num_host_blocks=*/32, seed);
  }
}

TEST(CudaKvSwap, PinnedHostMemoryIsRefusedCleanlyWhenTooLarge) {
  const absl::StatusOr<void*> huge = Gpu().AllocatePinnedHost(size_t{1} << 50);
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kResourceExhausted);
  // The device still works.
  test_util::CheckSwapRoundTrip(Gpu(), 8, 256, 4, 9);
}

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// One layer's keys of Llama-3-8B at 16 tokens per block: 16 x 8 heads x 128 x 2 bytes = 32 KiB.
// Swapping 64 sequences of 32 blocks each moves them in runs of 32 blocks (1 MiB copies).
TEST(CudaKvSwap, Bandwidth) {
  Device& gpu = Gpu();
  constexpr int kBlocks = 4096, kBlockElems = 16 * 8 * 128 / 2, kSwapped = 2048;
  absl::StatusOr<Tensor> cache = gpu.Allocate(DType::kInt32, {kBlocks, kBlockElems});
  ASSERT_TRUE(cache.ok());
  const size_t block_bytes = kBlockElems * sizeof(int32_t);
  const size_t bytes = block_bytes * kSwapped;
  absl::StatusOr<void*> host = gpu.AllocatePinnedHost(bytes);
  ASSERT_TRUE(host.ok());
  for (int run_blocks : {1, 32}) {
    std::vector<BlockSwap> swaps;
    // Device blocks in runs of `run_blocks`, spread over the cache; host blocks packed.
    for (int i = 0; i < kSwapped; ++i) {
      const int run = i / run_blocks, offset = i % run_blocks;
      swaps.push_back({(run * 2 * run_blocks + offset) % kBlocks, i});
    }
    for (SwapDirection direction : {SwapDirection::kDeviceToHost, SwapDirection::kHostToDevice}) {
      SwapBlocks(gpu, *cache, *host, swaps, direction);  // warm
      gpu.Synchronize();
      const auto start = std::chrono::steady_clock::now();
      SwapBlocks(gpu, *cache, *host, swaps, direction);
      gpu.Synchronize();
      const double swap_s = Seconds(start);
      const auto floor_start = std::chrono::steady_clock::now();
      if (direction == SwapDirection::kDeviceToHost) {
        gpu.CopyDeviceToHost(*host, cache->raw_data(), bytes);
      } else {
        gpu.CopyPinnedHostToDevice(cache->raw_data(), *host, bytes);
      }
      gpu.Synchronize();
      const double floor_s = Seconds(floor_start);
      std::printf(
          "swap %s, %d blocks of %zu KiB in runs of %d: %.2f ms = %.1f GB/s; one %zu MiB "
          "copy: %.2f ms = %.1f GB/s (%.0f%%)\n",
          direction == SwapDirection::kDeviceToHost ? "out" : "in ", kSwapped, block_bytes >> 10,
          run_blocks, swap_s * 1e3, bytes / swap_s / 1e9, bytes >> 20, floor_s * 1e3,
          bytes / floor_s / 1e9, 100.0 * floor_s / swap_s);
    }
  }
  gpu.FreePinnedHost(*host);
}

}  // namespace
}  // namespace pagedllm::kernels
