// CudaOps::PagedAttention against the CPU backend's PagedAttention (itself checked against
// float64 in tests/kernels/cpu_attention_test.cc), on the same inputs: for bf16 and fp16 the
// inputs are rounded to that dtype first and the CPU runs on the rounded values in float32.
//
// Sweeps dtype x block size x number of sequences x MHA/GQA/MQA x head_dim, each batch mixing
// decode, whole-prompt prefill and chunked prefill over a cached prefix with lengths around the
// block boundaries; plus long contexts (split-K decode), long prefills, the other head sizes,
// odd block sizes, wide GQA groups, empty query rows, and replay inside a CUDA graph. Block
// tables hold shuffled, non-contiguous block ids and garbage past each sequence's blocks; every
// cache slot no sequence owns, and every output element, starts as NaN.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <numeric>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/cpu/half_conversion.h"
#include "kernels/device.h"
#include "kernels/ops.h"
#include "tests/kernels/kernel_test_util.h"

namespace pagedllm::kernels {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

Device& Gpu() {
  static Device* device = [] {
    absl::StatusOr<std::unique_ptr<Device>> made = MakeCudaDevice(0);
    PAGEDLLM_CHECK_OK(made.status());
    return made->release();
  }();
  return *device;
}

Device& Cpu() { return test_util::TestDevice(); }

// One sequence of a batch: q_len query rows at the end of context_len cached positions.
struct Seq {
  int q_len;
  int context_len;
};

struct AttentionCase {
  std::string name;
  DType dtype;
  int block_size;
  int num_heads;
  int num_kv_heads;
  int head_dim;
  std::vector<Seq> seqs;
};

// Tolerance per dtype, |gpu - cpu| <= atol + rtol * |cpu| (outputs are averages of values in
// [-1, 1]). float32: only summation order and exp2 vs exp differ. bf16/fp16: the kernel rounds
// the probabilities to the dtype for the P·V tensor-core product (2^-9 / 2^-11 relative) and
// rounds the output (same), while the CPU keeps float32 throughout.
struct Tolerance {
  double atol, rtol;
};
Tolerance ToleranceFor(DType dtype) {
  switch (dtype) {
    case DType::kBFloat16:
      return {1e-2, 1e-2};
    case DType::kFloat16:
      return {3e-3, 3e-3};
    default:
      return {3e-5, 1e-4};
  }
}

const char* ShortName(DType dtype) {
  return dtype == DType::kFloat32 ? "f32" : dtype == DType::kBFloat16 ? "bf16" : "f16";
}

// x rounded to `dtype`'s precision (NaN stays NaN).
float RoundTo(DType dtype, float x) {
  if (dtype == DType::kBFloat16) return BFloat16ToFloat(FloatToBFloat16(x));
  if (dtype == DType::kFloat16) return HalfToFloat(FloatToHalf(x));
  return x;
}

Tensor UploadAs(Device& device, DType dtype, std::vector<int64_t> shape,
                const std::vector<float>& values) {
  absl::StatusOr<Tensor> tensor;
  if (dtype == DType::kFloat32) {
    tensor = device.FromHost<float>(dtype, std::move(shape), values);
  } else {
    std::vector<uint16_t> bits(values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      bits[i] = dtype == DType::kBFloat16 ? FloatToBFloat16(values[i]) : FloatToHalf(values[i]);
    }
    tensor = device.FromHost<uint16_t>(dtype, std::move(shape), bits);
  }
  PAGEDLLM_CHECK_OK(tensor.status());
  return *std::move(tensor);
}

Tensor UploadInts(Device& device, std::vector<int64_t> shape, const std::vector<int32_t>& values) {
  absl::StatusOr<Tensor> tensor = device.FromHost<int32_t>(DType::kInt32, std::move(shape), values);
  PAGEDLLM_CHECK_OK(tensor.status());
  return *std::move(tensor);
}

std::vector<float> DownloadAsFloats(Device& device, const Tensor& tensor) {
  if (tensor.dtype() == DType::kFloat32) return device.ToHost<float>(tensor);
  const std::vector<uint16_t> bits = device.ToHost<uint16_t>(tensor);
  std::vector<float> values(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) {
    values[i] =
        tensor.dtype() == DType::kBFloat16 ? BFloat16ToFloat(bits[i]) : HalfToFloat(bits[i]);
  }
  return values;
}

// A batch's host-side inputs, already rounded to the case's dtype.
struct HostBatch {
  int num_tokens = 0, num_blocks = 0, max_blocks = 0;
  std::vector<int32_t> query_start, context_lens, block_tables;
  std::vector<float> query, key_cache, value_cache;
};

HostBatch MakeBatch(const AttentionCase& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  HostBatch b;
  const int num_seqs = static_cast<int>(c.seqs.size());
  b.query_start.push_back(0);
  std::vector<int> blocks_used(num_seqs);
  for (int s = 0; s < num_seqs; ++s) {
    b.query_start.push_back(b.query_start.back() + c.seqs[s].q_len);
    b.context_lens.push_back(c.seqs[s].context_len);
    blocks_used[s] = (c.seqs[s].context_len + c.block_size - 1) / c.block_size;
    b.num_blocks += blocks_used[s];
    b.max_blocks = std::max(b.max_blocks, blocks_used[s]);
  }
  b.num_tokens = b.query_start.back();
  b.num_blocks += 3;  // owned by nobody: all NaN
  b.max_blocks += 2;  // columns past every sequence's blocks: garbage ids
  std::vector<int32_t> ids(b.num_blocks);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  b.block_tables.assign(static_cast<size_t>(num_seqs) * b.max_blocks, 0x3fffffff);
  const size_t slot_elems = static_cast<size_t>(c.num_kv_heads) * c.head_dim;
  b.key_cache.assign(static_cast<size_t>(b.num_blocks) * c.block_size * slot_elems, kNaN);
  b.value_cache = b.key_cache;
  int next = 0;
  for (int s = 0; s < num_seqs; ++s) {
    for (int blk = 0; blk < blocks_used[s]; ++blk) {
      b.block_tables[static_cast<size_t>(s) * b.max_blocks + blk] = ids[next++];
    }
    for (int pos = 0; pos < c.seqs[s].context_len; ++pos) {
      const size_t slot =
          static_cast<size_t>(b.block_tables[s * b.max_blocks + pos / c.block_size]) *
              c.block_size +
          pos % c.block_size;
      for (size_t e = 0; e < slot_elems; ++e) {
        b.key_cache[slot * slot_elems + e] = RoundTo(c.dtype, normal(rng));
        b.value_cache[slot * slot_elems + e] = RoundTo(c.dtype, uniform(rng));
      }
    }
  }
  b.query.resize(static_cast<size_t>(b.num_tokens) * c.num_heads * c.head_dim);
  for (float& q : b.query) q = RoundTo(c.dtype, normal(rng));
  return b;
}

// The op's tensors for `batch` on `device` (float tensors in `dtype`), output poisoned with NaN.
PagedAttentionParams MakeParams(Device& device, DType dtype, const AttentionCase& c,
                                const HostBatch& b) {
  PagedAttentionParams p;
  const std::vector<int64_t> qshape = {b.num_tokens, c.num_heads, c.head_dim};
  const std::vector<int64_t> cshape = {b.num_blocks, c.block_size, c.num_kv_heads, c.head_dim};
  const int64_t num_seqs = static_cast<int64_t>(c.seqs.size());
  p.query = UploadAs(device, dtype, qshape, b.query);
  p.key_cache = UploadAs(device, dtype, cshape, b.key_cache);
  p.value_cache = UploadAs(device, dtype, cshape, b.value_cache);
  p.block_tables = UploadInts(device, {num_seqs, b.max_blocks}, b.block_tables);
  p.query_start = UploadInts(device, {num_seqs + 1}, b.query_start);
  p.context_lens = UploadInts(device, {num_seqs}, b.context_lens);
  p.output = UploadAs(device, dtype, qshape, std::vector<float>(b.query.size(), kNaN));
  p.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  for (const Seq& s : c.seqs) p.max_query_len = std::max(p.max_query_len, s.q_len);  // exact
  return p;
}

std::vector<double> CpuReference(const AttentionCase& c, const HostBatch& b) {
  PagedAttentionParams p = MakeParams(Cpu(), DType::kFloat32, c, b);
  Cpu().ops().PagedAttention(p);
  const std::vector<float> out = DownloadAsFloats(Cpu(), p.output);
  return std::vector<double>(out.begin(), out.end());
}

void ExpectMatchesCpu(const AttentionCase& c, uint32_t seed) {
  const HostBatch batch = MakeBatch(c, seed);
  const std::vector<double> expected = CpuReference(c, batch);
  const Tolerance tol = ToleranceFor(c.dtype);
  // With the exact max_query_len (decode batches skip the prefill kernel), and without it.
  for (bool hint : {true, false}) {
    PagedAttentionParams p = MakeParams(Gpu(), c.dtype, c, batch);
    if (!hint) p.max_query_len = 0;
    Gpu().ops().PagedAttention(p);
    const std::vector<float> actual = DownloadAsFloats(Gpu(), p.output);
    EXPECT_TRUE(test_util::AllClose(actual, expected, tol.atol, tol.rtol))
        << c.name << (hint ? " with max_query_len" : " without max_query_len");
  }
}

std::string SeqsName(const std::vector<Seq>& seqs) {
  std::string name;
  for (const Seq& s : seqs) absl::StrAppend(&name, "_q", s.q_len, "c", s.context_len);
  return name;
}

AttentionCase MakeCase(const std::string& prefix, DType dtype, int block_size, int num_heads,
                       int num_kv_heads, int head_dim, std::vector<Seq> seqs, bool name_seqs) {
  AttentionCase c{absl::StrCat(prefix, ShortName(dtype), "_bs", block_size, "_h", num_heads, "kv",
                               num_kv_heads, "_d", head_dim),
                  dtype,
                  block_size,
                  num_heads,
                  num_kv_heads,
                  head_dim,
                  std::move(seqs)};
  if (name_seqs) {
    absl::StrAppend(&c.name, SeqsName(c.seqs));
  } else {
    absl::StrAppend(&c.name, "_n", c.seqs.size());
  }
  return c;
}

void PrintTo(const AttentionCase& c, std::ostream* os) { *os << c.name; }

class PagedAttentionTest : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(PagedAttentionTest, MatchesCpu) { ExpectMatchesCpu(GetParam(), 1234); }

std::string CaseName(const ::testing::TestParamInfo<AttentionCase>& info) {
  return info.param.name;
}

constexpr DType kDTypes[] = {DType::kFloat32, DType::kBFloat16, DType::kFloat16};

// (q_len, context_len): decode (q 1), whole prefill (q = context), chunked prefill over a
// cached prefix, small chunks that take the decode path for narrow groups, around 16 and 1000.
const std::vector<Seq> kPool = {{1, 1},   {1, 17},    {1, 1000}, {15, 15},   {16, 16},
                                {17, 17}, {100, 100}, {16, 116}, {17, 1017}, {4, 37},
                                {2, 16},  {1, 100},   {3, 33}};

// dtype x block size {1, 8, 16, 32} x heads {8/8, 32/8, 8/1} x head_dim {64, 128}; the number of
// sequences cycles through 8, 3, 1 and the sequences rotate through kPool.
std::vector<AttentionCase> SweepCases() {
  std::vector<AttentionCase> cases;
  const int kNumSeqs[] = {8, 3, 1};
  int counter = 0;
  for (DType dtype : kDTypes) {
    for (int block_size : {1, 8, 16, 32}) {
      for (auto [heads, kv_heads] : {std::pair{8, 8}, std::pair{32, 8}, std::pair{8, 1}}) {
        for (int head_dim : {64, 128}) {
          const int n = kNumSeqs[counter % 3];
          std::vector<Seq> seqs;
          for (int i = 0; i < n; ++i) seqs.push_back(kPool[(counter * 5 + i) % kPool.size()]);
          cases.push_back(MakeCase("", dtype, block_size, heads, kv_heads, head_dim, seqs, n == 1));
          ++counter;
        }
      }
    }
  }
  return cases;
}
INSTANTIATE_TEST_SUITE_P(Sweep, PagedAttentionTest, ::testing::ValuesIn(SweepCases()), CaseName);

// Contexts past 8192: the decode path splits them over many CTAs and merges the splits; mixed
// with a prefill so both launches run in one call.
std::vector<AttentionCase> LongContextCases() {
  std::vector<AttentionCase> cases;
  for (DType dtype : kDTypes) {
    for (auto [heads, kv_heads] : {std::pair{32, 8}, std::pair{8, 1}}) {
      cases.push_back(MakeCase("", dtype, 16, heads, kv_heads, 128, {{1, 8200}}, true));
      cases.push_back(MakeCase("", dtype, 16, heads, kv_heads, 128,
                               {{1, 9000}, {3, 8195}, {1, 33}, {40, 40}, {1, 16384}}, false));
    }
  }
  return cases;
}
INSTANTIATE_TEST_SUITE_P(LongContext, PagedAttentionTest, ::testing::ValuesIn(LongContextCases()),
                         CaseName);

// Long prefills: a 1000-token prompt, and a 500-token chunk over a 2500-token cached prefix.
std::vector<AttentionCase> LongPrefillCases() {
  std::vector<AttentionCase> cases;
  for (DType dtype : kDTypes) {
    for (int head_dim : {64, 128}) {
      cases.push_back(MakeCase("", dtype, 16, 32, 8, head_dim, {{1000, 1000}, {500, 3000}}, true));
    }
  }
  return cases;
}
INSTANTIATE_TEST_SUITE_P(LongPrefill, PagedAttentionTest, ::testing::ValuesIn(LongPrefillCases()),
                         CaseName);

// The other head sizes (templated instantiations), every dtype.
std::vector<AttentionCase> HeadDimCases() {
  std::vector<AttentionCase> cases;
  for (DType dtype : kDTypes) {
    for (int head_dim : {32, 80, 96, 256}) {
      cases.push_back(MakeCase("", dtype, 16, 8, 2, head_dim,
                               {{1, 50}, {20, 20}, {5, 300}, {1, 1000}, {70, 600}}, false));
    }
  }
  return cases;
}
INSTANTIATE_TEST_SUITE_P(HeadDims, PagedAttentionTest, ::testing::ValuesIn(HeadDimCases()),
                         CaseName);

// Block sizes that are not powers of two, and large ones.
std::vector<AttentionCase> BlockSizeCases() {
  std::vector<AttentionCase> cases;
  for (DType dtype : {DType::kFloat32, DType::kBFloat16}) {
    for (int block_size : {2, 3, 5, 64, 100, 256}) {
      cases.push_back(MakeCase("", dtype, block_size, 32, 8, 128,
                               {{1, 1}, {1, 700}, {33, 33}, {7, 260}, {3, 3}}, false));
    }
  }
  return cases;
}
INSTANTIATE_TEST_SUITE_P(BlockSizes, PagedAttentionTest, ::testing::ValuesIn(BlockSizeCases()),
                         CaseName);

// GQA groups wider than one 16-row MMA tile (32 and 24 heads per KV head), an odd group (5),
// and MHA with decode chunks up to 16 rows; empty query rows (q_len 0) in the batch.
std::vector<AttentionCase> GroupCases() {
  std::vector<AttentionCase> cases;
  const std::vector<Seq> seqs = {{1, 3000}, {0, 10}, {2, 40}, {16, 200}, {1, 17}, {9, 9}};
  for (DType dtype : {DType::kFloat32, DType::kBFloat16}) {
    for (auto [heads, kv_heads] :
         {std::pair{32, 1}, std::pair{48, 2}, std::pair{40, 8}, std::pair{16, 16}}) {
      cases.push_back(MakeCase("", dtype, 16, heads, kv_heads, 64, seqs, false));
    }
  }
  return cases;
}
INSTANTIATE_TEST_SUITE_P(Groups, PagedAttentionTest, ::testing::ValuesIn(GroupCases()), CaseName);

// The op reads query_start / context_lens on the device and neither allocates nor synchronises
// once its workspace is sized: captured once in a CUDA graph (stream capture fails on either), a
// replay after new lengths and new queries are written into the same tensors must match the CPU.
TEST(PagedAttentionGraphTest, ReplayReadsNewLengths) {
  AttentionCase c =
      MakeCase("graph_", DType::kBFloat16, 16, 32, 8, 128, {{1, 5000}, {1, 40}, {30, 300}}, false);
  const HostBatch first = MakeBatch(c, 7);
  PagedAttentionParams p = MakeParams(Gpu(), c.dtype, c, first);
  Gpu().ops().PagedAttention(p);  // sizes the workspace before capture
  Gpu().Synchronize();
  cudaStream_t stream = static_cast<cudaStream_t>(Gpu().native_stream());
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  Gpu().ops().PagedAttention(p);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);

  // Same shapes, new contents: contexts shrink and grow within the same block tables.
  AttentionCase next = c;
  next.seqs = {{1, 4000}, {1, 47}, {30, 290}};
  HostBatch second = MakeBatch(next, 8);
  second.block_tables = first.block_tables;
  second.num_blocks = first.num_blocks;
  second.max_blocks = first.max_blocks;
  // Re-lay the second batch's keys and values into the first batch's blocks.
  {
    HostBatch laid = second;
    laid.key_cache.assign(first.key_cache.size(), kNaN);
    laid.value_cache.assign(first.value_cache.size(), kNaN);
    std::mt19937 rng(9);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const size_t slot_elems = static_cast<size_t>(c.num_kv_heads) * c.head_dim;
    for (size_t s = 0; s < next.seqs.size(); ++s) {
      for (int pos = 0; pos < next.seqs[s].context_len; ++pos) {
        const size_t slot =
            static_cast<size_t>(first.block_tables[s * first.max_blocks + pos / c.block_size]) *
                c.block_size +
            pos % c.block_size;
        for (size_t e = 0; e < slot_elems; ++e) {
          laid.key_cache[slot * slot_elems + e] = RoundTo(c.dtype, normal(rng));
          laid.value_cache[slot * slot_elems + e] = RoundTo(c.dtype, normal(rng) * 0.5f);
        }
      }
    }
    second = laid;
  }
  const std::vector<double> expected = CpuReference(next, second);
  const PagedAttentionParams fresh = MakeParams(Gpu(), c.dtype, next, second);
  const std::vector<std::pair<Tensor*, const Tensor*>> copies = {
      {&p.query, &fresh.query},
      {&p.key_cache, &fresh.key_cache},
      {&p.value_cache, &fresh.value_cache},
      {&p.context_lens, &fresh.context_lens},
      {&p.query_start, &fresh.query_start},
      {&p.output, &fresh.output}};
  for (const auto& [dst, src] : copies) {
    Gpu().CopyDeviceToDevice(dst->raw_data(), src->raw_data(), src->bytes());
  }
  ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
  const std::vector<float> actual = DownloadAsFloats(Gpu(), p.output);
  EXPECT_EQ(cudaGraphExecDestroy(exec), cudaSuccess);
  EXPECT_EQ(cudaGraphDestroy(graph), cudaSuccess);
  const Tolerance tol = ToleranceFor(c.dtype);
  EXPECT_TRUE(test_util::AllClose(actual, expected, tol.atol, tol.rtol));
}

}  // namespace
}  // namespace pagedllm::kernels
