// Embedding, GatherRows, WriteKvCache, CopyBlocks and Cast on the GPU against the CPU backend:
// all are copies or exact conversions, so the bytes must be identical (NaN payloads aside in
// Cast). Row widths cover every copy word (16, 8, 4, 2 bytes) and misaligned views.
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/cuda/cuda_test_util.h"

namespace pagedllm::kernels {
namespace {

using cuda_test::Cpu;
using cuda_test::CpuOps;
using cuda_test::DownloadBytes;
using cuda_test::Gpu;
using cuda_test::GpuInts;
using cuda_test::GpuOps;
using cuda_test::NumElements;
using cuda_test::UploadBytes;
using test_util::UploadInts;

constexpr DType kAllTypes[] = {DType::kFloat32, DType::kBFloat16, DType::kFloat16, DType::kInt32};

std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> bytes(n);
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
  return bytes;
}

// The same bytes on both devices.
struct Pair {
  Tensor cpu, gpu;
};

Pair Both(DType dtype, const std::vector<int64_t>& shape, const std::vector<uint8_t>& bytes) {
  return {UploadBytes(Cpu(), dtype, shape, bytes), UploadBytes(Gpu(), dtype, shape, bytes)};
}

// Every byte 0xFF: NaN in each float dtype, -1 in int32.
Pair Poisoned(DType dtype, const std::vector<int64_t>& shape) {
  return Both(dtype, shape,
              std::vector<uint8_t>(NumElements(shape) * DTypeSize(dtype), uint8_t{0xFF}));
}

Pair BothInts(const std::vector<int64_t>& shape, const std::vector<int32_t>& values) {
  return {UploadInts(shape, values), GpuInts(shape, values)};
}

::testing::AssertionResult SameBytes(const Pair& pair) {
  const std::vector<uint8_t> cpu = DownloadBytes(Cpu(), pair.cpu);
  const std::vector<uint8_t> gpu = DownloadBytes(Gpu(), pair.gpu);
  for (size_t i = 0; i < cpu.size(); ++i) {
    if (cpu[i] != gpu[i]) {
      return ::testing::AssertionFailure() << "byte " << i << " of " << cpu.size() << ": gpu "
                                           << int{gpu[i]} << ", cpu " << int{cpu[i]};
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(CudaEmbedding, SweepMatchesCpu) {
  for (DType dtype : kAllTypes) {
    for (int64_t hidden : {1, 3, 4, 8, 4096}) {
      for (int64_t vocab_begin : {0, 100}) {
        SCOPED_TRACE(::testing::Message()
                     << DTypeName(dtype) << " hidden=" << hidden << " vocab_begin=" << vocab_begin);
        const int64_t vocab = 50;
        const Pair table =
            Both(dtype, {vocab, hidden}, RandomBytes(vocab * hidden * DTypeSize(dtype), hidden));
        // In range, below, above, and the edges of [vocab_begin, vocab_begin + vocab).
        std::vector<int32_t> ids = {static_cast<int32_t>(vocab_begin),
                                    -1,
                                    0,
                                    99,
                                    100,
                                    149,
                                    150,
                                    static_cast<int32_t>(vocab_begin + vocab - 1),
                                    1 << 30};
        for (int i = 0; i < 20; ++i)
          ids.push_back(static_cast<int32_t>(vocab_begin + (i * 7) % vocab));
        const int64_t n = static_cast<int64_t>(ids.size());
        const Pair id_tensor = BothInts({n}, ids);
        const Pair out = Poisoned(dtype, {n, hidden});
        CpuOps().Embedding(id_tensor.cpu, table.cpu, vocab_begin, out.cpu);
        GpuOps().Embedding(id_tensor.gpu, table.gpu, vocab_begin, out.gpu);
        EXPECT_TRUE(SameBytes(out));
      }
    }
  }
}

TEST(CudaGatherRows, SweepMatchesCpu) {
  for (DType dtype : kAllTypes) {
    for (int64_t d : {1, 2, 3, 8, 1000, 4096}) {
      for (bool misaligned : {false, true}) {  // x a row slice starting at an odd row
        SCOPED_TRACE(::testing::Message()
                     << DTypeName(dtype) << " d=" << d << " misaligned=" << misaligned);
        const int64_t rows = 40;
        const Pair full =
            Both(dtype, {rows + 1, d}, RandomBytes((rows + 1) * d * DTypeSize(dtype), d));
        const int64_t first = misaligned ? 1 : 0;
        const Pair x = {full.cpu.Slice(first, first + rows), full.gpu.Slice(first, first + rows)};
        std::vector<int32_t> indices = {0, 39, 5, 5, 17};
        for (int i = 0; i < 30; ++i) indices.push_back((i * 13) % rows);
        const int64_t m = static_cast<int64_t>(indices.size());
        const Pair index_tensor = BothInts({m}, indices);
        const Pair out = Poisoned(dtype, {m + 1, d});
        const Pair out_view = {out.cpu.Slice(1, m + 1), out.gpu.Slice(1, m + 1)};
        CpuOps().GatherRows(x.cpu, index_tensor.cpu, out_view.cpu);
        GpuOps().GatherRows(x.gpu, index_tensor.gpu, out_view.gpu);
        EXPECT_TRUE(SameBytes(out));
      }
    }
  }
}

TEST(CudaWriteKvCache, SweepMatchesCpu) {
  for (DType dtype : {DType::kBFloat16, DType::kFloat32}) {
    for (int64_t head_dim : {1, 3, 64, 128}) {
      for (int64_t kv_heads : {1, 8}) {
        SCOPED_TRACE(::testing::Message()
                     << DTypeName(dtype) << " head_dim=" << head_dim << " kv_heads=" << kv_heads);
        const int64_t num_blocks = 6, block_size = 16, n = 40;
        const std::vector<int64_t> cache_shape = {num_blocks, block_size, kv_heads, head_dim};
        const size_t cache_bytes = NumElements(cache_shape) * DTypeSize(dtype);
        const size_t row_bytes = kv_heads * head_dim * DTypeSize(dtype);
        const Pair key_cache = Both(dtype, cache_shape, RandomBytes(cache_bytes, 1));
        const Pair value_cache = Both(dtype, cache_shape, RandomBytes(cache_bytes, 2));
        const Pair key = Both(dtype, {n, kv_heads, head_dim}, RandomBytes(n * row_bytes, 3));
        const Pair value = Both(dtype, {n, kv_heads, head_dim}, RandomBytes(n * row_bytes, 4));
        std::vector<int32_t> slots(n);
        for (int64_t i = 0; i < n; ++i)
          slots[i] = static_cast<int32_t>((i * 37) % (num_blocks * block_size));
        slots[3] = -1;  // padding tokens are skipped
        slots[n - 1] = -1;
        slots[7] = num_blocks * block_size - 1;  // the last slot
        const Pair slot_tensor = BothInts({n}, slots);
        CpuOps().WriteKvCache(key.cpu, value.cpu, slot_tensor.cpu, key_cache.cpu, value_cache.cpu);
        GpuOps().WriteKvCache(key.gpu, value.gpu, slot_tensor.gpu, key_cache.gpu, value_cache.gpu);
        EXPECT_TRUE(SameBytes(key_cache));
        EXPECT_TRUE(SameBytes(value_cache));
      }
    }
  }
}

TEST(CudaCopyBlocks, SweepMatchesCpu) {
  for (DType dtype : {DType::kBFloat16, DType::kFloat32}) {
    for (const std::vector<int64_t>& block_shape :
         std::vector<std::vector<int64_t>>{{1}, {3}, {16, 8, 128}, {16, 1, 3}, {256, 8, 128}}) {
      SCOPED_TRACE(::testing::Message()
                   << DTypeName(dtype) << " block elements=" << NumElements(block_shape));
      const int64_t num_blocks = 12;
      std::vector<int64_t> shape = {num_blocks};
      shape.insert(shape.end(), block_shape.begin(), block_shape.end());
      const Pair cache = Both(dtype, shape, RandomBytes(NumElements(shape) * DTypeSize(dtype), 9));
      // Distinct destinations, none of them a source; one self-copy.
      const Pair pairs = BothInts({5, 2}, {0, 6, 3, 7, 3, 8, 11, 9, 2, 2});
      CpuOps().CopyBlocks(cache.cpu, pairs.cpu);
      GpuOps().CopyBlocks(cache.gpu, pairs.gpu);
      EXPECT_TRUE(SameBytes(cache));
    }
  }
}

// Values that exercise every conversion: normal, tie, subnormal (float16 and float32), out of
// float16's range, infinities, signed zeros and NaN.
std::vector<float> CastValues() {
  std::vector<float> values = {0.0f,
                               -0.0f,
                               1.0f,
                               -1.5f,
                               65504.0f,
                               65520.0f,
                               70000.0f,
                               -1e30f,
                               std::numeric_limits<float>::infinity(),
                               -std::numeric_limits<float>::infinity(),
                               std::numeric_limits<float>::quiet_NaN(),
                               6.0e-8f,
                               3.0e-8f,
                               1e-40f,
                               -1e-45f,
                               1.00390625f,
                               1.01171875f,
                               1.0009765625f,
                               3.14159265f};
  std::mt19937 rng(5);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 5000; ++i) {  // random bit patterns: every exponent, NaNs included
    const uint32_t b = bits(rng);
    float f;
    std::memcpy(&f, &b, sizeof(f));
    values.push_back(f);
  }
  const std::vector<float> normal = test_util::RandomNormal(5000, 6, 100.0f);
  values.insert(values.end(), normal.begin(), normal.end());
  return values;
}

TEST(CudaCast, AllPairsMatchCpu) {
  const std::vector<float> values = CastValues();
  const int64_t n = static_cast<int64_t>(values.size());
  for (DType from : cuda_test::kFloatTypes) {
    for (DType to : cuda_test::kFloatTypes) {
      SCOPED_TRACE(::testing::Message() << DTypeName(from) << " -> " << DTypeName(to));
      const Pair in = Both(from, {n}, cuda_test::Encode(from, values));
      const Pair out = Poisoned(to, {n});
      CpuOps().Cast(in.cpu, out.cpu);
      GpuOps().Cast(in.gpu, out.gpu);
      // Bitwise, except that a NaN only has to stay a NaN (CUDA's conversions return the
      // canonical NaN; the CPU keeps the payload).
      const std::vector<float> cpu = cuda_test::Decode(to, DownloadBytes(Cpu(), out.cpu));
      const std::vector<float> gpu = cuda_test::Decode(to, DownloadBytes(Gpu(), out.gpu));
      int64_t mismatches = 0;
      for (int64_t i = 0; i < n; ++i) {
        const bool same = std::isnan(cpu[i]) ? std::isnan(gpu[i])
                                             : std::memcmp(&cpu[i], &gpu[i], sizeof(float)) == 0;
        if (!same && ++mismatches <= 5) {
          ADD_FAILURE() << "element " << i << " (" << values[i] << "): gpu " << gpu[i] << ", cpu "
                        << cpu[i];
        }
      }
      EXPECT_EQ(mismatches, 0);
    }
  }
  // Same dtype copies any dtype, int32 included.
  const Pair ints = BothInts({4}, {1, -2, 3, 1 << 30});
  const Pair ints_out = Poisoned(DType::kInt32, {4});
  GpuOps().Cast(ints.gpu, ints_out.gpu);
  EXPECT_EQ(Gpu().ToHost<int32_t>(ints_out.gpu), (std::vector<int32_t>{1, -2, 3, 1 << 30}));
}

TEST(CudaCopyOpsDeathTest, BadArgumentsAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(GpuOps().Cast(GpuInts({2}, {1, 2}), Poisoned(DType::kFloat32, {2}).gpu),
               "Cast: only float dtypes convert");
  // An index outside x is found on the device: the kernel traps and the next sync aborts.
  EXPECT_DEATH(
      {
        const Tensor out = Poisoned(DType::kFloat32, {1, 4}).gpu;
        GpuOps().GatherRows(Poisoned(DType::kFloat32, {3, 4}).gpu, GpuInts({1}, {3}), out);
        Gpu().Synchronize();
      },
      "cudaStreamSynchronize");
}

}  // namespace
}  // namespace pagedllm::kernels
