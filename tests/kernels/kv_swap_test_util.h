// A swap-out / swap-in round trip through pinned host memory, for any device: random blocks go
// out to scattered host blocks (with runs that merge and runs that do not), the device blocks are
// overwritten, and the host blocks come back into other device blocks; every byte is compared
// with what was written, and blocks not named are checked untouched.
#pragma once

#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "common/check.h"
#include "gtest/gtest.h"
#include "kernels/device.h"
#include "kernels/kv_swap.h"

namespace pagedllm::kernels::test_util {

// cache: [num_blocks, block_elems] int32 (the copies are bytewise; dtype does not matter).
inline void CheckSwapRoundTrip(Device& device, int num_blocks, int block_elems, int num_host_blocks,
                               uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> initial(static_cast<size_t>(num_blocks) * block_elems);
  for (int32_t& v : initial) v = static_cast<int32_t>(rng());
  absl::StatusOr<Tensor> cache =
      device.FromHost<int32_t>(DType::kInt32, {num_blocks, block_elems}, initial);
  PAGEDLLM_CHECK_OK(cache.status());
  const size_t block_bytes = static_cast<size_t>(block_elems) * sizeof(int32_t);
  absl::StatusOr<void*> host = device.AllocatePinnedHost(block_bytes * num_host_blocks);
  PAGEDLLM_CHECK_OK(host.status());
  std::memset(*host, 0xAB, block_bytes * num_host_blocks);

  // Out: device blocks [2, 2 + n/2) to host blocks [0, n/2) (one merged run), then scattered
  // device blocks to the remaining host blocks in reverse order (no merging).
  const int n = std::min(num_host_blocks, num_blocks / 2);
  std::vector<int32_t> device_ids(num_blocks);
  std::iota(device_ids.begin(), device_ids.end(), 0);
  std::shuffle(device_ids.begin() + 2 + n / 2, device_ids.end(), rng);
  std::vector<BlockSwap> out;
  for (int i = 0; i < n; ++i) {
    if (i < n / 2) {
      out.push_back({2 + i, i});
    } else {
      out.push_back({device_ids[2 + i], n - 1 - (i - n / 2)});
    }
  }
  const absl::Status out_ok =
      CheckBlockSwaps(out, num_blocks, num_host_blocks, SwapDirection::kDeviceToHost);
  ASSERT_TRUE(out_ok.ok()) << out_ok;
  SwapBlocks(device, *cache, *host, out, SwapDirection::kDeviceToHost);
  device.Synchronize();
  for (const BlockSwap& swap : out) {
    ASSERT_EQ(0, std::memcmp(static_cast<char*>(*host) + swap.host_block * block_bytes,
                             initial.data() + static_cast<size_t>(swap.device_block) * block_elems,
                             block_bytes))
        << "host block " << swap.host_block << " after swapping out device block "
        << swap.device_block;
  }

  // Overwrite the whole device cache, then swap in to device blocks in reverse order.
  std::vector<int32_t> poison(initial.size(), -7);
  device.CopyHostToDevice(cache->raw_data(), poison.data(), cache->bytes());
  std::vector<BlockSwap> in;
  for (int i = 0; i < n; ++i) in.push_back({num_blocks - 1 - i, out[i].host_block});
  const absl::Status in_ok =
      CheckBlockSwaps(in, num_blocks, num_host_blocks, SwapDirection::kHostToDevice);
  ASSERT_TRUE(in_ok.ok()) << in_ok;
  SwapBlocks(device, *cache, *host, in, SwapDirection::kHostToDevice);
  const std::vector<int32_t> after = device.ToHost<int32_t>(*cache);
  std::vector<bool> written(num_blocks, false);
  for (int i = 0; i < n; ++i) {
    const int32_t dst = in[i].device_block;
    written[dst] = true;
    ASSERT_EQ(0,
              std::memcmp(after.data() + static_cast<size_t>(dst) * block_elems,
                          initial.data() + static_cast<size_t>(out[i].device_block) * block_elems,
                          block_bytes))
        << "device block " << dst << " after swapping in host block " << in[i].host_block;
  }
  for (int b = 0; b < num_blocks; ++b) {
    if (written[b]) continue;
    for (int e = 0; e < block_elems; ++e) {
      ASSERT_EQ(after[static_cast<size_t>(b) * block_elems + e], -7)
          << "device block " << b << " was not named but changed";
    }
  }
  device.FreePinnedHost(*host);
}

}  // namespace pagedllm::kernels::test_util
