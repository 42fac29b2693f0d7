// CudaOps::SampleRows against the CPU backend (itself checked against a float64 reference in
// tests/kernels/sample_rows_test.cc): the same tokens bit for bit (both use
// kernels/sampling_math.h), the same kept-set sizes and top-N ids, logprobs within 2e-5, over
// vocab sizes up to 151936, batches 1..256, float32/bfloat16/float16 logits, every filter
// combination (random per row), many seeds, and sharded layouts.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/device.h"
#include "tests/kernels/cuda/cuda_test_util.h"
#include "tests/kernels/sample_rows_test_util.h"

namespace pagedllm::kernels {
namespace {

using cuda_test::Cpu;
using cuda_test::Gpu;
using cuda_test::RoundAll;
using sample_test::RandomBatch;
using sample_test::RandomRow;
using sample_test::RunSampleRows;
using sample_test::SampleOutputs;

::testing::AssertionResult LogprobNear(float got, float want) {
  if (got == want || std::abs(got - want) <= 2e-5 * std::max(1.0f, std::abs(want))) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "logprob " << got << ", want " << want;
}

// Runs one batch on both backends (the CPU sees the logits rounded to `dtype`) and compares.
void CompareBatch(int64_t vocab, int64_t rows, DType dtype, int num_shards, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int num_top = 5;
  std::vector<float> logits;
  std::vector<SampleRowParams> params;
  RandomBatch(vocab, rows, num_top, rng, &logits, &params);
  logits = RoundAll(dtype, std::move(logits));
  const SampleOutputs want =
      RunSampleRows(Cpu(), DType::kFloat32, logits, rows, vocab, params, num_top);
  const SampleOutputs got =
      RunSampleRows(Gpu(), dtype, logits, rows, vocab, params, num_top, num_shards);
  int token_mismatches = 0;
  for (int64_t p = 0; p < rows; ++p) {
    const std::string what =
        "vocab " + std::to_string(vocab) + " rows " + std::to_string(rows) + " " +
        DTypeName(dtype) + " shards " + std::to_string(num_shards) + " row " + std::to_string(p) +
        " T " + std::to_string(params[p].temperature) + " k " + std::to_string(params[p].top_k) +
        " p " + std::to_string(params[p].top_p) + " min_p " + std::to_string(params[p].min_p);
    token_mismatches += got.tokens[p] != want.tokens[p];
    EXPECT_EQ(got.tokens[p], want.tokens[p]) << what;
    EXPECT_EQ(got.num_kept[p], want.num_kept[p]) << what;
    EXPECT_TRUE(LogprobNear(got.logprobs[p], want.logprobs[p])) << what;
    for (int j = 0; j < num_top; ++j) {
      EXPECT_EQ(got.top_ids[p * num_top + j], want.top_ids[p * num_top + j]) << what;
      EXPECT_TRUE(
          LogprobNear(got.top_logprobs[p * num_top + j], want.top_logprobs[p * num_top + j]))
          << what;
    }
  }
  if (token_mismatches > 0) {
    std::printf("vocab %ld rows %ld %s: %d token mismatches\n", static_cast<long>(vocab),
                static_cast<long>(rows), DTypeName(dtype), token_mismatches);
  }
}

TEST(CudaSampleRowsTest, SmallVocabsMatchCpu) {  // also the compute-sanitizer subset
  uint64_t seed = 1;
  for (int64_t vocab : {1, 5, 37, 500, 3001}) {
    for (DType dtype : cuda_test::kFloatTypes) CompareBatch(vocab, 24, dtype, 1, seed++);
  }
  CompareBatch(3001, 16, DType::kBFloat16, 3, seed++);
}

// Batches small enough that each row is cut into several slices (vocab >= 2 * 4096 ids), small
// enough for compute-sanitizer.
TEST(CudaSampleRowsTest, SlicedRowsMatchCpu) {
  uint64_t seed = 50;
  for (int64_t vocab : {9000, 20001}) {
    for (DType dtype : cuda_test::kFloatTypes) {
      for (int64_t rows : {1, 3}) CompareBatch(vocab, rows, dtype, 1, seed++);
    }
  }
  CompareBatch(20001, 2, DType::kBFloat16, 3, seed++);
}

TEST(CudaSampleRowsTest, LargeVocabsMatchCpu) {
  const int64_t batches[] = {1, 7, 64, 256};
  int i = 0;
  uint64_t seed = 100;
  for (int64_t vocab : {32000, 50257, 128256, 151936}) {
    for (DType dtype : cuda_test::kFloatTypes) {
      CompareBatch(vocab, batches[i++ % 4], dtype, 1, seed++);
    }
  }
}

TEST(CudaSampleRowsTest, ShardedLayoutsMatchCpu) {
  CompareBatch(32000, 32, DType::kBFloat16, 2, 7);
  CompareBatch(50257, 16, DType::kFloat32, 4, 8);
  CompareBatch(151936, 8, DType::kFloat16, 8, 9);
}

TEST(CudaSampleRowsTest, ManySeedsOfOneRowMatchCpu) {
  std::mt19937_64 rng(5);
  const int64_t vocab = 32000, rows = 256;
  const std::vector<float> row = cuda_test::RoundAll(DType::kBFloat16, RandomRow(vocab, rng));
  std::vector<float> logits;
  std::vector<SampleRowParams> params;
  for (int64_t p = 0; p < rows; ++p) {
    logits.insert(logits.end(), row.begin(), row.end());
    SampleRowParams sp;
    sp.temperature = 0.8f;
    sp.top_p = p % 2 == 0 ? 0.9f : 1.0f;
    sp.top_k = p % 3 == 0 ? 50 : 0;
    sp.set_seed(rng());
    sp.set_draw(static_cast<uint64_t>(p));
    params.push_back(sp);
  }
  const SampleOutputs want = RunSampleRows(Cpu(), DType::kFloat32, logits, rows, vocab, params, 0);
  const SampleOutputs got = RunSampleRows(Gpu(), DType::kBFloat16, logits, rows, vocab, params, 0);
  EXPECT_EQ(got.tokens, want.tokens);
  EXPECT_EQ(got.num_kept, want.num_kept);
}

}  // namespace
}  // namespace pagedllm::kernels
