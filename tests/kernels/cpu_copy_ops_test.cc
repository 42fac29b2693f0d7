// The ops that move data without arithmetic: Embedding, GatherRows, WriteKvCache and
// CopyBlocks. Their results must be bit-exact copies, so every check here is equality.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace pagedllm::kernels {
namespace {

using test_util::BitwiseEqual;
using test_util::DownloadFloats;
using test_util::DownloadInts;
using test_util::PoisonedFloats;
using test_util::RandomNormal;
using test_util::TestOps;
using test_util::UploadFloats;
using test_util::UploadInts;

TEST(Embedding, VocabParallelRanges) {
  const int64_t hidden = 48, vocab_local = 37;
  const std::vector<float> table = RandomNormal(vocab_local * hidden, 1);
  for (int64_t vocab_begin : {0, 100}) {
    SCOPED_TRACE(::testing::Message() << "vocab_begin=" << vocab_begin);
    // In range (first, last, middle, repeated) and out of range on both sides.
    const std::vector<int32_t> ids = {
        static_cast<int32_t>(vocab_begin),      static_cast<int32_t>(vocab_begin + 36),
        static_cast<int32_t>(vocab_begin + 37), static_cast<int32_t>(vocab_begin - 1),
        static_cast<int32_t>(vocab_begin + 5),  -5,
        static_cast<int32_t>(vocab_begin + 5),  1 << 30};
    const int64_t n = static_cast<int64_t>(ids.size());
    const Tensor out = PoisonedFloats({n, hidden});
    TestOps().Embedding(UploadInts({n}, ids), UploadFloats({vocab_local, hidden}, table),
                        vocab_begin, out);
    std::vector<float> expected(n * hidden, 0.0f);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t row = ids[i] - vocab_begin;
      if (row < 0 || row >= vocab_local) continue;
      std::copy_n(table.begin() + row * hidden, hidden, expected.begin() + i * hidden);
    }
    EXPECT_TRUE(BitwiseEqual(DownloadFloats(out), expected));
  }
}

TEST(GatherRows, RandomIndicesWithRepeats) {
  for (int64_t d : {1, 3, 256}) {
    for (int64_t m : {1, 9, 64}) {
      SCOPED_TRACE(::testing::Message() << "d=" << d << " m=" << m);
      const int64_t n = 20;
      const std::vector<float> x = RandomNormal(n * d, static_cast<uint32_t>(d * 100 + m));
      std::mt19937 rng(static_cast<uint32_t>(m));
      std::vector<int32_t> indices(m);
      for (int32_t& i : indices) i = std::uniform_int_distribution<int32_t>(0, n - 1)(rng);
      indices[0] = n - 1;
      const Tensor out = PoisonedFloats({m, d});
      TestOps().GatherRows(UploadFloats({n, d}, x), UploadInts({m}, indices), out);
      std::vector<float> expected;
      for (int32_t i : indices)
        expected.insert(expected.end(), x.begin() + i * d, x.begin() + (i + 1) * d);
      EXPECT_TRUE(BitwiseEqual(DownloadFloats(out), expected));
    }
  }
}

TEST(GatherRows, Int32Rows) {
  const Tensor out = UploadInts({3, 2}, std::vector<int32_t>(6, -1));
  TestOps().GatherRows(UploadInts({3, 2}, {1, 2, 3, 4, 5, 6}), UploadInts({3}, {2, 0, 2}), out);
  EXPECT_EQ(DownloadInts(out), (std::vector<int32_t>{5, 6, 1, 2, 5, 6}));
}

// Scatters n tokens into random distinct slots, some skipped (slot -1); every other slot
// keeps its old contents.
TEST(WriteKvCache, RandomAndSkippedSlots) {
  for (int block_size : {1, 16}) {
    for (int num_kv_heads : {1, 4}) {
      SCOPED_TRACE(::testing::Message()
                   << "block_size=" << block_size << " kv_heads=" << num_kv_heads);
      const int head_dim = 32, num_blocks = 9, n = 7;
      const int row = num_kv_heads * head_dim;
      const int num_slots = num_blocks * block_size;
      const uint32_t seed = static_cast<uint32_t>(block_size * 10 + num_kv_heads);
      const std::vector<float> key = RandomNormal(n * row, seed);
      const std::vector<float> value = RandomNormal(n * row, seed + 1);
      std::vector<float> key_cache = RandomNormal(num_slots * row, seed + 2);
      std::vector<float> value_cache = RandomNormal(num_slots * row, seed + 3);
      std::vector<int32_t> all_slots(num_slots);
      std::iota(all_slots.begin(), all_slots.end(), 0);
      std::mt19937 rng(seed);
      std::shuffle(all_slots.begin(), all_slots.end(), rng);
      std::vector<int32_t> slots(all_slots.begin(), all_slots.begin() + n);
      slots[1] = -1;
      slots[n - 1] = -7;
      const std::vector<int64_t> cache_shape = {num_blocks, block_size, num_kv_heads, head_dim};
      const Tensor key_cache_tensor = UploadFloats(cache_shape, key_cache);
      const Tensor value_cache_tensor = UploadFloats(cache_shape, value_cache);
      TestOps().WriteKvCache(UploadFloats({n, num_kv_heads, head_dim}, key),
                             UploadFloats({n, num_kv_heads, head_dim}, value),
                             UploadInts({n}, slots), key_cache_tensor, value_cache_tensor);
      for (int i = 0; i < n; ++i) {
        if (slots[i] < 0) continue;
        std::copy_n(key.begin() + i * row, row, key_cache.begin() + slots[i] * row);
        std::copy_n(value.begin() + i * row, row, value_cache.begin() + slots[i] * row);
      }
      EXPECT_TRUE(BitwiseEqual(DownloadFloats(key_cache_tensor), key_cache));
      EXPECT_TRUE(BitwiseEqual(DownloadFloats(value_cache_tensor), value_cache));
    }
  }
}

TEST(CopyBlocks, CopiesWholeBlocksOnly) {
  const int num_blocks = 10, block_elements = 16 * 2 * 8;  // [10, 16, 2, 8]
  std::vector<float> cache = RandomNormal(num_blocks * block_elements, 21);
  const Tensor cache_tensor = UploadFloats({num_blocks, 16, 2, 8}, cache);
  const std::vector<int32_t> pairs = {3, 7, 0, 9, 3, 1};  // 3 -> 7, 0 -> 9, 3 -> 1
  TestOps().CopyBlocks(cache_tensor, UploadInts({3, 2}, pairs));
  for (size_t i = 0; i < pairs.size(); i += 2) {
    std::copy_n(cache.begin() + pairs[i] * block_elements, block_elements,
                cache.begin() + pairs[i + 1] * block_elements);
  }
  EXPECT_TRUE(BitwiseEqual(DownloadFloats(cache_tensor), cache));
  // No pairs: nothing changes.
  TestOps().CopyBlocks(cache_tensor, UploadInts({0, 2}, {}));
  EXPECT_TRUE(BitwiseEqual(DownloadFloats(cache_tensor), cache));
}

TEST(CopyOpsDeathTest, RejectBadIndices) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      TestOps().GatherRows(PoisonedFloats({4, 2}), UploadInts({2}, {1, 4}), PoisonedFloats({2, 2})),
      "GatherRows: indices\\[1\\] = 4 is outside x's 4 rows");
  EXPECT_DEATH(TestOps().CopyBlocks(PoisonedFloats({4, 2}), UploadInts({1, 2}, {0, 4})),
               "CopyBlocks: pair 0 \\(0 -> 4\\) is outside the cache's 4 blocks");
  const Tensor cache = PoisonedFloats({2, 4, 1, 8});
  EXPECT_DEATH(TestOps().WriteKvCache(PoisonedFloats({1, 1, 8}), PoisonedFloats({1, 1, 8}),
                                      UploadInts({1}, {8}), cache, cache),
               "WriteKvCache: slot_mapping\\[0\\] = 8 is outside the cache's 8 slots");
  EXPECT_DEATH(TestOps().WriteKvCache(PoisonedFloats({1, 2, 8}), PoisonedFloats({1, 2, 8}),
                                      UploadInts({1}, {0}), cache, cache),
               "WriteKvCache: want key, value: \\[n, num_kv_heads, head_dim\\]");
  EXPECT_DEATH(TestOps().Embedding(UploadInts({2}, {0, 1}), PoisonedFloats({4, 8}), 0,
                                   PoisonedFloats({2, 6})),
               "Embedding: want token_ids: \\[n\\], table: \\[vocab_local, hidden\\]");
}

}  // namespace
}  // namespace pagedllm::kernels
