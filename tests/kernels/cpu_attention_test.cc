// PagedAttention against a float64 reference that reads each sequence's keys and values from
// dense per-sequence arrays (no block tables), swept over block size × number of sequences ×
// query mode (decode, prefill, chunked prefill over a cached prefix, and a mix) × context
// lengths crossing block boundaries × MHA/GQA/MQA × head_dim. Block tables hold shuffled,
// non-contiguous block ids; every cache slot no sequence owns, and every output element, starts
// as NaN, so reading a wrong slot or leaving a row unwritten fails.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/ops.h"
#include "tests/kernels/kernel_test_util.h"

namespace pagedllm::kernels {
namespace {

using test_util::AllClose;
using test_util::DownloadFloats;
using test_util::PoisonedFloats;
using test_util::TestOps;
using test_util::UploadFloats;
using test_util::UploadInts;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr int kNumHeads = 8;
// Lengths around the block sizes 1, 8, 16, 32 (15/16/17 straddle a block boundary).
constexpr int kContextLens[] = {1, 15, 16, 17, 100, 300};
constexpr int kNumContextLens = 6;

enum class QueryMode { kDecode, kPrefill, kChunkedPrefill, kMixed };

const char* QueryModeName(QueryMode mode) {
  switch (mode) {
    case QueryMode::kDecode:
      return "decode";
    case QueryMode::kPrefill:
      return "prefill";
    case QueryMode::kChunkedPrefill:
      return "chunked";
    case QueryMode::kMixed:
      return "mixed";
  }
  return "?";
}

struct AttentionCase {
  int block_size;
  int num_seqs;
  // Sequence i has kContextLens[(length_offset + i) % kNumContextLens] tokens.
  int length_offset;
  QueryMode mode;
  int num_kv_heads;
  int head_dim;
};

std::string CaseName(const ::testing::TestParamInfo<AttentionCase>& info) {
  const AttentionCase& c = info.param;
  return absl::StrCat("bs", c.block_size, "_seqs", c.num_seqs, "_len",
                      kContextLens[c.length_offset], "_", QueryModeName(c.mode), "_h", kNumHeads,
                      "kv", c.num_kv_heads, "_d", c.head_dim);
}

// Every (block size, num_seqs, mode, heads, head_dim), with context-length offsets chosen so
// every length in kContextLens appears for each combination: one sequence runs each length on
// its own; 3 and 7 sequences cover them all within two batches and one batch.
std::vector<AttentionCase> AllCases() {
  std::vector<AttentionCase> cases;
  for (int block_size : {1, 8, 16, 32}) {
    for (int num_seqs : {1, 3, 7}) {
      std::vector<int> offsets;
      if (num_seqs == 1) offsets = {0, 1, 2, 3, 4, 5};
      if (num_seqs == 3) offsets = {0, 3};
      if (num_seqs == 7) offsets = {1};
      for (int offset : offsets) {
        for (QueryMode mode : {QueryMode::kDecode, QueryMode::kPrefill, QueryMode::kChunkedPrefill,
                               QueryMode::kMixed}) {
          if (num_seqs == 1 && mode == QueryMode::kMixed) continue;  // same as the others
          for (int num_kv_heads : {8, 2, 1}) {
            for (int head_dim : {32, 64, 128}) {
              cases.push_back({block_size, num_seqs, offset, mode, num_kv_heads, head_dim});
            }
          }
        }
      }
    }
  }
  return cases;
}

// A batch on the host: the inputs of PagedAttention plus, per sequence, its keys and values
// in position order ([context_len, num_kv_heads, head_dim]) for the reference.
struct Batch {
  int num_kv_heads = 0, head_dim = 0, block_size = 0, num_blocks = 0, max_blocks = 0;
  std::vector<int32_t> query_start, context_lens, block_tables;
  std::vector<float> query;                      // [num_tokens, kNumHeads, head_dim]
  std::vector<float> key_cache, value_cache;     // [num_blocks, block_size, num_kv_heads, head_dim]
  std::vector<std::vector<float>> keys, values;  // per sequence, dense
  float scale = 1.0f;
};

// Uniform values with mean 0 and standard deviation `stddev`, from a small fast generator:
// the sweep draws tens of millions of them.
class FastRandom {
 public:
  FastRandom(uint32_t seed, float stddev)
      : state_(seed * 0x9E3779B97F4A7C15ull + 1), half_width_(stddev * std::sqrt(3.0f)) {}
  float operator()() {
    // SplitMix64, top 24 bits as a float in [0, 1).
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const float unit = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
    return (2.0f * unit - 1.0f) * half_width_;
  }

 private:
  uint64_t state_;
  float half_width_;
};

Batch MakeBatch(const AttentionCase& c, uint32_t seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  FastRandom normal(seed, stddev);
  Batch b;
  b.num_kv_heads = c.num_kv_heads;
  b.head_dim = c.head_dim;
  b.block_size = c.block_size;
  b.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  const int row = c.num_kv_heads * c.head_dim;

  std::vector<int> query_lens(c.num_seqs), blocks_needed(c.num_seqs);
  b.query_start = {0};
  for (int s = 0; s < c.num_seqs; ++s) {
    const int context_len = kContextLens[(c.length_offset + s) % kNumContextLens];
    QueryMode mode = c.mode;
    if (mode == QueryMode::kMixed) {
      mode = static_cast<QueryMode>(s % 3);  // decode, prefill, chunked prefill
    }
    int query_len = context_len;
    if (mode == QueryMode::kDecode) query_len = 1;
    if (mode == QueryMode::kChunkedPrefill && context_len > 1) {
      const int cached = std::uniform_int_distribution<int>(1, context_len - 1)(rng);
      query_len = context_len - cached;
    }
    query_lens[s] = query_len;
    b.context_lens.push_back(context_len);
    b.query_start.push_back(b.query_start.back() + query_len);
    blocks_needed[s] = (context_len + c.block_size - 1) / c.block_size;
  }

  // Shuffled block ids with a few spare blocks no sequence uses.
  const int total_blocks = std::accumulate(blocks_needed.begin(), blocks_needed.end(), 0);
  b.num_blocks = total_blocks + 5;
  b.max_blocks = *std::max_element(blocks_needed.begin(), blocks_needed.end()) + 2;
  std::vector<int32_t> ids(b.num_blocks);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  // Unused table entries point far outside the cache: reading one would be a bug.
  b.block_tables.assign(static_cast<size_t>(c.num_seqs) * b.max_blocks, 1 << 28);
  const size_t cache_elements = static_cast<size_t>(b.num_blocks) * c.block_size * row;
  b.key_cache.assign(cache_elements, kNaN);
  b.value_cache.assign(cache_elements, kNaN);
  int next_id = 0;
  for (int s = 0; s < c.num_seqs; ++s) {
    for (int j = 0; j < blocks_needed[s]; ++j) {
      b.block_tables[s * b.max_blocks + j] = ids[next_id++];
    }
    const int context_len = b.context_lens[s];
    b.keys.emplace_back(static_cast<size_t>(context_len) * row);
    b.values.emplace_back(static_cast<size_t>(context_len) * row);
    for (int p = 0; p < context_len; ++p) {
      const int64_t slot =
          static_cast<int64_t>(b.block_tables[s * b.max_blocks + p / c.block_size]) * c.block_size +
          p % c.block_size;
      for (int e = 0; e < row; ++e) {
        const float k = normal(), v = normal();
        b.keys[s][p * row + e] = k;
        b.values[s][p * row + e] = v;
        b.key_cache[slot * row + e] = k;
        b.value_cache[slot * row + e] = v;
      }
    }
  }
  b.query.resize(static_cast<size_t>(b.query_start.back()) * kNumHeads * c.head_dim);
  for (float& q : b.query) q = normal();
  return b;
}

double DotDouble(const double* a, const double* b, int n) {
  double acc[4] = {0, 0, 0, 0};
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int l = 0; l < 4; ++l) acc[l] += a[i + l] * b[i + l];
  }
  for (; i < n; ++i) acc[0] += a[i] * b[i];
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

std::vector<double> ToDouble(const std::vector<float>& values) {
  return std::vector<double>(values.begin(), values.end());
}

// Causal softmax attention in float64 over the dense per-sequence keys and values.
std::vector<double> ReferenceAttention(const Batch& b) {
  const int d = b.head_dim, row = b.num_kv_heads * d;
  const int group = kNumHeads / b.num_kv_heads;
  const std::vector<double> query = ToDouble(b.query);
  std::vector<double> out(b.query.size());
  std::vector<double> scores, acc(d);
  for (size_t s = 0; s + 1 < b.query_start.size(); ++s) {
    const std::vector<double> keys = ToDouble(b.keys[s]), values = ToDouble(b.values[s]);
    const int query_len = b.query_start[s + 1] - b.query_start[s];
    const int context_len = b.context_lens[s];
    for (int j = 0; j < query_len; ++j) {
      const int token = b.query_start[s] + j;
      const int attended = context_len - query_len + j + 1;
      scores.resize(attended);
      for (int h = 0; h < kNumHeads; ++h) {
        const double* q = &query[(static_cast<size_t>(token) * kNumHeads + h) * d];
        const int kv = h / group;
        double max_score = -std::numeric_limits<double>::infinity();
        for (int p = 0; p < attended; ++p) {
          scores[p] = b.scale * DotDouble(q, &keys[p * row + kv * d], d);
          max_score = std::max(max_score, scores[p]);
        }
        double sum = 0.0;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int p = 0; p < attended; ++p) {
          const double w = std::exp(scores[p] - max_score);
          sum += w;
          const double* v = &values[p * row + kv * d];
          for (int e = 0; e < d; ++e) acc[e] += w * v[e];
        }
        for (int e = 0; e < d; ++e) {
          out[(static_cast<size_t>(token) * kNumHeads + h) * d + e] = acc[e] / sum;
        }
      }
    }
  }
  return out;
}

// Runs the CPU kernel on the batch; the output starts as NaN.
std::vector<float> RunAttention(const Batch& b) {
  const int num_tokens = b.query_start.back();
  const int num_seqs = static_cast<int>(b.context_lens.size());
  PagedAttentionParams p;
  p.query = UploadFloats({num_tokens, kNumHeads, b.head_dim}, b.query);
  p.key_cache = UploadFloats({b.num_blocks, b.block_size, b.num_kv_heads, b.head_dim}, b.key_cache);
  p.value_cache =
      UploadFloats({b.num_blocks, b.block_size, b.num_kv_heads, b.head_dim}, b.value_cache);
  p.block_tables = UploadInts({num_seqs, b.max_blocks}, b.block_tables);
  p.query_start = UploadInts({num_seqs + 1}, b.query_start);
  p.context_lens = UploadInts({num_seqs}, b.context_lens);
  p.scale = b.scale;
  p.output = PoisonedFloats({num_tokens, kNumHeads, b.head_dim});
  TestOps().PagedAttention(p);
  return DownloadFloats(p.output);
}

class PagedAttentionSweep : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(PagedAttentionSweep, MatchesFloat64Reference) {
  const AttentionCase& c = GetParam();
  const uint32_t seed =
      static_cast<uint32_t>(c.block_size * 1000003 + c.num_seqs * 10007 + c.length_offset * 1009 +
                            static_cast<int>(c.mode) * 101 + c.num_kv_heads * 11 + c.head_dim);
  const Batch b = MakeBatch(c, seed);
  // float32 scores, softmax and value sums over <= 300 positions with q, k, v of standard deviation
  // 1: observed errors stay below 1e-6, so atol 1e-5 + rtol 1e-5 has a 10x margin.
  EXPECT_TRUE(AllClose(RunAttention(b), ReferenceAttention(b), /*atol=*/1e-5, /*rtol=*/1e-5));
}

INSTANTIATE_TEST_SUITE_P(Cpu, PagedAttentionSweep, ::testing::ValuesIn(AllCases()), CaseName);

// Scores of a few hundred (q, k of standard deviation 10): exp() without subtracting the maximum
// would overflow float32 and give NaN or inf.
TEST(PagedAttention, LargeScoresStayFinite) {
  for (int num_kv_heads : {8, 1}) {
    const AttentionCase c{16, 3, 0, QueryMode::kMixed, num_kv_heads, 64};
    const Batch b = MakeBatch(c, 4242 + num_kv_heads, /*stddev=*/10.0f);
    // Scores ~ 100 in magnitude carry float32 rounding of ~1e-5 absolute, amplified by exp()
    // into relative weight errors of ~1e-5; the softmax is nearly one-hot, so outputs are
    // values of size ~10: atol 1e-3 + rtol 1e-4.
    EXPECT_TRUE(AllClose(RunAttention(b), ReferenceAttention(b), /*atol=*/1e-3, /*rtol=*/1e-4))
        << "num_kv_heads " << num_kv_heads;
  }
}

// A sequence with no query rows this step (its slot in the batch is idle) writes nothing and
// does not disturb its neighbours.
TEST(PagedAttention, SequenceWithoutQueryRows) {
  const AttentionCase c{8, 3, 2, QueryMode::kPrefill, 2, 32};
  Batch b = MakeBatch(c, 77);
  // Drop sequence 1's query rows: shift later rows down.
  const int row = kNumHeads * b.head_dim;
  const int begin = b.query_start[1], end = b.query_start[2];
  b.query.erase(b.query.begin() + static_cast<int64_t>(begin) * row,
                b.query.begin() + static_cast<int64_t>(end) * row);
  b.query_start[2] = begin;
  b.query_start[3] -= end - begin;
  EXPECT_TRUE(AllClose(RunAttention(b), ReferenceAttention(b), /*atol=*/1e-5, /*rtol=*/1e-5));
}

class PagedAttentionDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(PagedAttentionDeathTest, RejectsBadBatches) {
  const AttentionCase c{16, 1, 4, QueryMode::kDecode, 2, 32};  // 100 tokens = 7 blocks
  Batch bad_block = MakeBatch(c, 5);
  bad_block.block_tables[3] = bad_block.num_blocks;
  EXPECT_DEATH(RunAttention(bad_block), "block_tables\\[0\\]\\[3\\] = .* is outside the cache");

  Batch short_context = MakeBatch({16, 1, 4, QueryMode::kPrefill, 2, 32}, 6);
  short_context.context_lens[0] = 50;  // but 100 query rows
  EXPECT_DEATH(RunAttention(short_context), "context_lens 50 < its 100 query rows");

  Batch small_table = MakeBatch(c, 7);
  small_table.context_lens[0] = 16 * small_table.max_blocks + 1;
  EXPECT_DEATH(RunAttention(small_table), "block_tables has only");
}

TEST_F(PagedAttentionDeathTest, RejectsMismatchedShapes) {
  PagedAttentionParams p;
  p.query = PoisonedFloats({4, 6, 32});  // 6 heads over 4 kv heads
  p.key_cache = PoisonedFloats({2, 16, 4, 32});
  p.value_cache = PoisonedFloats({2, 16, 4, 32});
  p.block_tables = UploadInts({1, 1}, {0});
  p.query_start = UploadInts({2}, {0, 4});
  p.context_lens = UploadInts({1}, {4});
  p.output = PoisonedFloats({4, 6, 32});
  EXPECT_DEATH(TestOps().PagedAttention(p),
               "num_heads must be a multiple of num_kv_heads \\(query \\[4, 6, 32\\] float32");
  p.query = PoisonedFloats({4, 8, 32});
  p.output = PoisonedFloats({4, 8, 64});
  EXPECT_DEATH(TestOps().PagedAttention(p), "output must match query");
}

}  // namespace
}  // namespace pagedllm::kernels
