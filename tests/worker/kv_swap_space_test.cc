// The worker's KV swap space on the CPU device: every layer's keys and values go out to host
// blocks and come back into other device blocks; bad ids are refused before anything moves.
#include "worker/model/kv_swap_space.h"

#include <vector>

#include "gtest/gtest.h"

namespace pagedllm::worker {
namespace {

using kernels::BlockSwap;
using kernels::DType;

std::vector<float> Fill(const kernels::Tensor& tensor, float base) {
  std::vector<float> values(tensor.numel());
  for (size_t i = 0; i < values.size(); ++i) values[i] = base + static_cast<float>(i);
  tensor.device()->CopyHostToDevice(tensor.raw_data(), values.data(), tensor.bytes());
  return values;
}

TEST(KvSwapSpace, MovesEveryLayersKeysAndValues) {
  std::unique_ptr<kernels::Device> device = kernels::MakeCpuDevice();
  constexpr int kLayers = 3, kBlocks = 10, kBlockSize = 4, kHeads = 2, kHeadDim = 8;
  absl::StatusOr<KvCache> cache =
      KvCache::Create(*device, DType::kFloat32, kLayers, kBlocks, kBlockSize, kHeads, kHeadDim);
  ASSERT_TRUE(cache.ok()) << cache.status();
  absl::StatusOr<std::unique_ptr<KvSwapSpace>> space = KvSwapSpace::Create(*device, *cache, 5);
  ASSERT_TRUE(space.ok()) << space.status();
  EXPECT_EQ((*space)->num_blocks(), 5);

  std::vector<std::vector<float>> keys, values;
  for (int layer = 0; layer < kLayers; ++layer) {
    keys.push_back(Fill(cache->key(layer), 1000.0f * layer));
    values.push_back(Fill(cache->value(layer), -1000.0f * layer - 1.0f));
  }
  ASSERT_TRUE((*space)->SwapOut(*cache, std::vector<BlockSwap>{{3, 0}, {4, 1}, {7, 4}}).ok());
  for (int layer = 0; layer < kLayers; ++layer) {
    Fill(cache->key(layer), 5e6f);
    Fill(cache->value(layer), 6e6f);
  }
  ASSERT_TRUE((*space)->SwapIn(*cache, std::vector<BlockSwap>{{0, 0}, {1, 1}, {9, 4}}).ok());
  const int block_elems = kBlockSize * kHeads * kHeadDim;
  const auto expect_block = [&](int layer, int dst, int src) {
    const std::vector<float> k = device->ToHost<float>(cache->key(layer));
    const std::vector<float> v = device->ToHost<float>(cache->value(layer));
    for (int e = 0; e < block_elems; ++e) {
      ASSERT_EQ(k[dst * block_elems + e], keys[layer][src * block_elems + e])
          << "layer " << layer << " keys of block " << dst;
      ASSERT_EQ(v[dst * block_elems + e], values[layer][src * block_elems + e])
          << "layer " << layer << " values of block " << dst;
    }
  };
  for (int layer = 0; layer < kLayers; ++layer) {
    expect_block(layer, 0, 3);
    expect_block(layer, 1, 4);
    expect_block(layer, 9, 7);
  }
}

TEST(KvSwapSpace, RefusesBadIdsAndAnEmptySpace) {
  std::unique_ptr<kernels::Device> device = kernels::MakeCpuDevice();
  absl::StatusOr<KvCache> cache = KvCache::Create(*device, DType::kFloat32, 2, 6, 4, 1, 8);
  ASSERT_TRUE(cache.ok());
  absl::StatusOr<std::unique_ptr<KvSwapSpace>> space = KvSwapSpace::Create(*device, *cache, 2);
  ASSERT_TRUE(space.ok());
  EXPECT_EQ((*space)->SwapOut(*cache, std::vector<BlockSwap>{{6, 0}}).message(),
            "swap out: device block 6 is outside [0, 6)");
  EXPECT_EQ((*space)->SwapIn(*cache, std::vector<BlockSwap>{{0, 2}}).message(),
            "swap in: host block 2 is outside [0, 2)");
  EXPECT_TRUE((*space)->SwapIn(*cache, {}).ok());

  absl::StatusOr<std::unique_ptr<KvSwapSpace>> none = KvSwapSpace::Create(*device, *cache, 0);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ((*none)->SwapOut(*cache, std::vector<BlockSwap>{{0, 0}}).message(),
            "swap out: host block 0 is outside [0, 0)");
  EXPECT_EQ(KvSwapSpace::Create(*device, *cache, -1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pagedllm::worker
