// CudaOps::Linear (cuBLASLt) against the CPU backend's OpenBLAS sgemm, for float32, bfloat16 and
// float16, over a sweep of shapes including the Llama-3-8B decode ones.
#include <cmath>
#include <cstdint>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/cuda/cuda_test_util.h"

namespace pagedllm::kernels {
namespace {

using cuda_test::Cpu;
using cuda_test::CpuOps;
using cuda_test::GpuDownload;
using cuda_test::GpuOps;
using cuda_test::GpuPoisoned;
using cuda_test::GpuTensor;
using cuda_test::RoundAll;
using cuda_test::UnitRoundoff;
using test_util::AllClose;
using test_util::DownloadFloats;
using test_util::PoisonedFloats;
using test_util::RandomUniform;
using test_util::UploadFloats;

// Tolerance of y[i][j]. Both backends accumulate the same (exactly representable) products in
// float32, in different orders; any order of k float32 additions is within
// gamma_k * sum|x w| <= k * 2^-24 * sum|x w| of the exact dot product (Higham, Accuracy and
// Stability, 3.1), so the two differ by at most twice that. This bound grows with k: for
// k = 14336 it allows 1.7e-3 * sum|x w|, where a fixed rtol of 1e-5 would reject correct
// float32 GEMMs whose summation orders differ (cuBLAS tiles and splits k; OpenBLAS does not).
// A 16-bit output adds one rounding: u * |y| (rtol below).
std::vector<double> AccumulationBound(const std::vector<float>& x, const std::vector<float>& w,
                                      int64_t m, int64_t n, int64_t k) {
  std::vector<double> bound(m * n);
  const double gamma = 2.0 * static_cast<double>(k) * std::ldexp(1.0, -24);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0.0;
      for (int64_t l = 0; l < k; ++l)
        sum += std::abs(static_cast<double>(x[i * k + l]) * w[j * k + l]);
      bound[i * n + j] = gamma * sum + 1e-30;
    }
  }
  return bound;
}

void CheckLinear(DType dtype, int64_t m, int64_t n, int64_t k, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << DTypeName(dtype) << " m=" << m << " n=" << n << " k=" << k);
  const std::vector<float> x = RoundAll(dtype, RandomUniform(m * k, seed, -1.0f, 1.0f));
  const std::vector<float> w = RoundAll(dtype, RandomUniform(n * k, seed + 1, -1.0f, 1.0f));
  const Tensor y = GpuPoisoned(dtype, {m, n});
  GpuOps().Linear(GpuTensor(dtype, {m, k}, x), GpuTensor(dtype, {n, k}, w), y);
  const Tensor y_cpu = PoisonedFloats({m, n});
  CpuOps().Linear(UploadFloats({m, k}, x), UploadFloats({n, k}, w), y_cpu);
  // rtol: the output's one rounding to dtype (0 for float32, whose result is not rounded again).
  const double rtol = dtype == DType::kFloat32 ? 0.0 : UnitRoundoff(dtype) * 1.001;
  EXPECT_TRUE(AllClose(GpuDownload(y), cuda_test::ToDouble(DownloadFloats(y_cpu)),
                       AccumulationBound(x, w, m, n, k), rtol));
}

TEST(CudaLinear, SweepMatchesCpu) {
  const std::vector<std::pair<int64_t, int64_t>> nk = {{1, 1},     {7, 5},      {64, 64},
                                                       {129, 257}, {512, 1000}, {96, 4096}};
  for (DType dtype : cuda_test::kFloatTypes) {
    for (int64_t m : {1, 3, 32, 77}) {
      for (const auto& [n, k] : nk) {
        CheckLinear(dtype, m, n, k, static_cast<uint32_t>(m * 1000 + n + k));
      }
    }
  }
}

// Llama-3-8B decode shapes (n, k) at m = 1 and 32, the long-k down projection included.
TEST(CudaLinear, LlamaDecodeShapes) {
  for (DType dtype : {DType::kBFloat16, DType::kFloat32}) {
    for (int64_t m : {1, 32}) {
      CheckLinear(dtype, m, 256, 14336, 7);  // n cut to 256 to keep the reference quick
      CheckLinear(dtype, m, 6144 / 8, 4096, 8);
    }
  }
}

TEST(CudaLinear, EmptyK) {
  for (DType dtype : cuda_test::kFloatTypes) {
    const Tensor y = GpuPoisoned(dtype, {3, 5});
    GpuOps().Linear(GpuPoisoned(dtype, {3, 0}), GpuPoisoned(dtype, {5, 0}), y);
    EXPECT_EQ(GpuDownload(y), std::vector<float>(15, 0.0f));
  }
}

// Row slices start at any element: the plan cache keys on pointer alignment, so a 2-byte
// aligned x still gets an algorithm that can read it.
TEST(CudaLinear, MisalignedViews) {
  for (DType dtype : {DType::kBFloat16, DType::kFloat32}) {
    const int64_t m = 6, n = 33, k = 65;  // odd k: row r starts at r * 65 elements
    const std::vector<float> x = RoundAll(dtype, RandomUniform(m * k, 11));
    const std::vector<float> w = RoundAll(dtype, RandomUniform(n * k, 12));
    const Tensor x_gpu = GpuTensor(dtype, {m, k}, x);
    const Tensor w_gpu = GpuTensor(dtype, {n, k}, w);
    const Tensor y = GpuPoisoned(dtype, {m, n});
    GpuOps().Linear(x_gpu.Slice(1, m), w_gpu.Slice(0, n), y.Slice(1, m));
    const std::vector<float> x_tail(x.begin() + k, x.end());
    const Tensor y_cpu = PoisonedFloats({m - 1, n});
    CpuOps().Linear(UploadFloats({m - 1, k}, x_tail), UploadFloats({n, k}, w), y_cpu);
    const std::vector<float> got = GpuDownload(y);
    const std::vector<float> got_tail(got.begin() + n, got.end());
    const double rtol = dtype == DType::kFloat32 ? 0.0 : UnitRoundoff(dtype) * 1.001;
    EXPECT_TRUE(AllClose(got_tail, cuda_test::ToDouble(DownloadFloats(y_cpu)),
                         AccumulationBound(x_tail, w, m - 1, n, k), rtol));
  }
}

TEST(CudaLinearDeathTest, NamesTheShapes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      GpuOps().Linear(GpuPoisoned(DType::kBFloat16, {3, 5}), GpuPoisoned(DType::kBFloat16, {4, 6}),
                      GpuPoisoned(DType::kBFloat16, {3, 4})),
      "Linear: x and weight disagree on k \\(x \\[3, 5\\] bfloat16, weight \\[4, 6\\] "
      "bfloat16, y \\[3, 4\\] bfloat16\\)");
  EXPECT_DEATH(
      GpuOps().Linear(GpuPoisoned(DType::kBFloat16, {3, 5}), GpuPoisoned(DType::kFloat16, {4, 5}),
                      GpuPoisoned(DType::kBFloat16, {3, 4})),
      "Linear: weight must be bfloat16");
}

}  // namespace
}  // namespace pagedllm::kernels
