// The small-batch GEMV (kernels/cuda/cuda_gemv.cu, bf16/fp16, m <= 8; CudaOps::Linear's path at
// m <= 2) against the CPU backend's Linear: m = 1..8 over odd and tail-heavy (n, k), the Llama
// shapes at m = 1 (the 128256-row LM head included), the fallbacks to cuBLASLt (k not a multiple
// of 8, misaligned views), and capture into a CUDA graph.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_device.h"
#include "kernels/cuda/cuda_linear.h"
#include "tests/kernels/cuda/cuda_test_util.h"

namespace pagedllm::kernels {
namespace {

using cuda_test::CpuOps;
using cuda_test::GpuDownload;
using cuda_test::GpuOps;
using cuda_test::GpuPoisoned;
using cuda_test::GpuTensor;
using cuda_test::UnitRoundoff;
using test_util::AllClose;
using test_util::DownloadFloats;
using test_util::PoisonedFloats;
using test_util::UploadFloats;

// n values, each exact in both bf16 and fp16: sign, exponent -7..-1, 7 mantissa bits (so ±[2^-7,
// 1), never zero, 8 significant bits). Inputs need no rounding, and every product x·w (16
// significant bits) is exact in float32. A xorshift, so the 525M-element LM head is quick.
std::vector<float> RandomExact(size_t n, uint64_t seed) {
  std::vector<float> values(n);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float& v : values) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    const uint32_t r = static_cast<uint32_t>(s >> 20);
    const uint32_t exponent = 126u - (r >> 7) % 7u;  // biased: 2^-1 .. 2^-7
    const uint32_t bits = (((r >> 10) & 1u) << 31) | (exponent << 23) | ((r & 0x7Fu) << 16);
    std::memcpy(&v, &bits, sizeof(v));
  }
  return values;
}

// Tolerance of y[i][j] beyond the output's rounding. Both backends sum the same exact float32
// products, in different orders (GEMV: 32 lanes' strided partial sums then a shuffle tree;
// OpenBLAS: its own blocking); any order of k float32 additions is within
// gamma_k * sum|x w| <= k * 2^-24 * sum|x w| of the exact dot product (Higham, Accuracy and
// Stability, 3.1), so the two differ by at most twice that. The bf16/fp16 output then adds one
// rounding, u * |y| (rtol in CheckLinear): 2^-8 for bf16, 2^-11 for fp16.
std::vector<double> AccumulationBound(const std::vector<float>& x, const std::vector<float>& w,
                                      int64_t m, int64_t n, int64_t k) {
  std::vector<double> bound(m * n);
  const double gamma = 2.0 * static_cast<double>(k) * std::ldexp(1.0, -24);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      const float* xi = &x[i * k];
      const float* wj = &w[j * k];
      float sum = 0.0f;  // |x w| sums to at most k; float's 2^-24 relative error is immaterial
      for (int64_t l = 0; l < k; ++l) sum += std::abs(xi[l] * wj[l]);
      bound[i * n + j] = gamma * static_cast<double>(sum) * (1.0 + 1e-3) + 1e-30;
    }
  }
  return bound;
}

// y = x · wᵀ through GpuOps().Linear (the GEMV at m <= 2, cuBLASLt above) and, where it
// applies, through cuda::LaunchGemv directly (every m <= 8), each against CpuOps().Linear on the
// same values. y is a row slice of a NaN-poisoned [m + 1, n] tensor whose last row must stay NaN
// (no write past y).
void CheckLinear(DType dtype, int64_t m, int64_t n, int64_t k, uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << DTypeName(dtype) << " m=" << m << " n=" << n << " k=" << k);
  const std::vector<float> x = RandomExact(m * k, seed);
  const std::vector<float> w = RandomExact(n * k, seed + 1);
  const Tensor x_gpu = GpuTensor(dtype, {m, k}, x);
  const Tensor w_gpu = GpuTensor(dtype, {n, k}, w);
  const Tensor y_cpu = PoisonedFloats({m, n});
  CpuOps().Linear(UploadFloats({m, k}, x), UploadFloats({n, k}, w), y_cpu);
  const std::vector<double> expected = cuda_test::ToDouble(DownloadFloats(y_cpu));
  const std::vector<double> bound = AccumulationBound(x, w, m, n, k);
  const double rtol = UnitRoundoff(dtype) * 1.001;  // the output's one rounding
  const auto check = [&](const Tensor& y_all) {
    std::vector<float> got = GpuDownload(y_all);
    for (int64_t j = m * n; j < (m + 1) * n; ++j) {
      ASSERT_TRUE(std::isnan(got[j])) << "y written past its end at column " << j - m * n;
    }
    got.resize(m * n);
    EXPECT_TRUE(AllClose(got, expected, bound, rtol));
  };
  {
    SCOPED_TRACE("Linear");
    const Tensor y_all = GpuPoisoned(dtype, {m + 1, n});
    GpuOps().Linear(x_gpu, w_gpu, y_all.Slice(0, m));
    check(y_all);
  }
  const cuda::FloatType type =
      dtype == DType::kBFloat16 ? cuda::FloatType::kBFloat16 : cuda::FloatType::kFloat16;
  if (cuda::GemvApplies(type, x_gpu.raw_data(), w_gpu.raw_data(), m, n, k)) {
    SCOPED_TRACE("LaunchGemv");
    const Tensor y_all = GpuPoisoned(dtype, {m + 1, n});
    auto& device = dynamic_cast<CudaDevice&>(cuda_test::Gpu());
    ASSERT_TRUE(cuda::LaunchGemv(type, x_gpu.raw_data(), w_gpu.raw_data(), y_all.raw_data(), m, n,
                                 k, device.stream()));
    check(y_all);
  } else {
    EXPECT_NE(k % 8, 0) << "the GEMV should apply";
  }
}

TEST(CudaGemv, AppliesOnlyToAlignedSmallBatches) {
  alignas(16) static const uint16_t buffer[64] = {};
  const void* p = buffer;
  const void* odd = buffer + 1;  // 2-byte aligned
  using cuda::FloatType;
  using cuda::GemvApplies;
  EXPECT_TRUE(GemvApplies(FloatType::kBFloat16, p, p, 1, 1, 8));
  EXPECT_TRUE(GemvApplies(FloatType::kFloat16, p, p, 8, 7, 4104));
  EXPECT_FALSE(GemvApplies(FloatType::kFloat32, p, p, 1, 1, 8));    // cuBLASLt
  EXPECT_FALSE(GemvApplies(FloatType::kBFloat16, p, p, 9, 1, 8));   // m > 8
  EXPECT_FALSE(GemvApplies(FloatType::kBFloat16, p, p, 1, 1, 12));  // k % 8 != 0
  EXPECT_FALSE(GemvApplies(FloatType::kBFloat16, odd, p, 1, 1, 8));
  EXPECT_FALSE(GemvApplies(FloatType::kBFloat16, p, odd, 1, 1, 8));
  EXPECT_FALSE(GemvApplies(FloatType::kBFloat16, p, p, 0, 1, 8));
}

// Every m of the GEMV; n odd or not a multiple of a warp's rows (the clamped last warp), k from
// one 16-byte vector to several steps with a ragged tail (kv = k / 8 not a multiple of 32 or of
// 32 * U). k = 5 and 257 are not multiples of 8: the cuBLASLt fallback.
TEST(CudaGemv, SweepMatchesCpu) {
  const std::vector<std::pair<int64_t, int64_t>> nk = {
      {1, 8}, {7, 16}, {9, 5}, {33, 24}, {64, 64}, {129, 264}, {130, 257}, {257, 1000}, {96, 4104}};
  for (DType dtype : {DType::kBFloat16, DType::kFloat16}) {
    for (int64_t m = 1; m <= 8; ++m) {
      for (const auto& [n, k] : nk) CheckLinear(dtype, m, n, k, static_cast<uint64_t>(m * 97 + n));
    }
  }
}

// Llama-2/3 projections at m = 1 (QKV, O, gate+up, down, the 128256-row LM head), and the
// down projection (longest k) at m = 8 in fp16.
TEST(CudaGemv, LlamaShapes) {
  const std::vector<std::pair<int64_t, int64_t>> nk = {
      {6144, 4096}, {4096, 4096}, {28672, 4096}, {4096, 14336}, {128256, 4096}};
  for (const auto& [n, k] : nk) CheckLinear(DType::kBFloat16, 1, n, k, static_cast<uint64_t>(n));
  CheckLinear(DType::kFloat16, 8, 4096, 14336, 5);
  CheckLinear(DType::kBFloat16, 4, 6144, 4096, 6);
}

// At m = 2 (<= kGemvLinearMaxRows) the same values through LaunchGemv and
// through Linear give the same bits (Linear took the GEMV path); a view whose rows start 24 bytes
// apart (k = 12) falls back to cuBLASLt and still matches the CPU, as does one 128 bytes apart (k =
// 64, GEMV).
TEST(CudaGemv, LinearUsesGemvAndFallsBack) {
  const DType dtype = DType::kBFloat16;
  const int64_t m = 2, n = 45, k = 136;
  const Tensor x = GpuTensor(dtype, {m, k}, RandomExact(m * k, 1));
  const Tensor w = GpuTensor(dtype, {n, k}, RandomExact(n * k, 2));
  const Tensor y_linear = GpuPoisoned(dtype, {m, n});
  const Tensor y_direct = GpuPoisoned(dtype, {m, n});
  GpuOps().Linear(x, w, y_linear);
  auto& device = dynamic_cast<CudaDevice&>(cuda_test::Gpu());
  ASSERT_TRUE(cuda::LaunchGemv(cuda::FloatType::kBFloat16, x.raw_data(), w.raw_data(),
                               y_direct.raw_data(), m, n, k, device.stream()));
  const std::vector<float> linear = GpuDownload(y_linear);
  EXPECT_TRUE(test_util::BitwiseEqual(GpuDownload(y_direct), linear));
  ASSERT_FALSE(std::isnan(linear[0]));

  for (int64_t view_k : {12, 64}) {
    SCOPED_TRACE(::testing::Message() << "k=" << view_k);
    const int64_t rows = 5, cols = 19;
    const std::vector<float> xv = RandomExact(rows * view_k, 3);
    const std::vector<float> wv = RandomExact(cols * view_k, 4);
    const Tensor x_gpu = GpuTensor(dtype, {rows, view_k}, xv);
    const Tensor y = GpuPoisoned(dtype, {rows - 1, cols});
    GpuOps().Linear(x_gpu.Slice(1, rows), GpuTensor(dtype, {cols, view_k}, wv), y);
    const std::vector<float> x_tail(xv.begin() + view_k, xv.end());
    const Tensor y_cpu = PoisonedFloats({rows - 1, cols});
    CpuOps().Linear(UploadFloats({rows - 1, view_k}, x_tail), UploadFloats({cols, view_k}, wv),
                    y_cpu);
    EXPECT_TRUE(AllClose(GpuDownload(y), cuda_test::ToDouble(DownloadFloats(y_cpu)),
                         AccumulationBound(x_tail, wv, rows - 1, cols, view_k),
                         UnitRoundoff(dtype) * 1.001));
  }
}

// Linear at m = 1 captured into a CUDA graph (the decode path): no allocation, no sync; replaying
// the graph writes the same bits as the direct call.
TEST(CudaGemv, CapturesInCudaGraph) {
  const DType dtype = DType::kFloat16;
  const int64_t n = 1000, k = 2048;
  const Tensor x = GpuTensor(dtype, {1, k}, RandomExact(k, 8));
  const Tensor w = GpuTensor(dtype, {n, k}, RandomExact(n * k, 9));
  const Tensor y_direct = GpuPoisoned(dtype, {1, n});
  const Tensor y_graph = GpuPoisoned(dtype, {1, n});
  GpuOps().Linear(x, w, y_direct);
  auto& device = dynamic_cast<CudaDevice&>(cuda_test::Gpu());
  device.Synchronize();
  cudaGraph_t graph = nullptr;
  PAGEDLLM_CUDA_CHECK(cudaStreamBeginCapture(device.stream(), cudaStreamCaptureModeThreadLocal));
  GpuOps().Linear(x, w, y_graph);
  PAGEDLLM_CUDA_CHECK(cudaStreamEndCapture(device.stream(), &graph));
  cudaGraphExec_t exec = nullptr;
  PAGEDLLM_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  PAGEDLLM_CUDA_CHECK(cudaGraphLaunch(exec, device.stream()));
  device.Synchronize();
  EXPECT_TRUE(test_util::BitwiseEqual(GpuDownload(y_graph), GpuDownload(y_direct)));
  PAGEDLLM_CUDA_CHECK(cudaGraphExecDestroy(exec));
  PAGEDLLM_CUDA_CHECK(cudaGraphDestroy(graph));
}

}  // namespace
}  // namespace pagedllm::kernels
