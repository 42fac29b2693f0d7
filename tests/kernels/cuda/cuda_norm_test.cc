// RmsNorm, AddRmsNorm and SiluAndMul on the GPU against the CPU backend, for float32, bfloat16
// and float16. In 16 bits the reference also emulates Hugging Face's rounding order on top of the
// CPU's float32 results (see cuda_norm.cu), and most elements must match it bit for bit.
#include <cmath>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/cuda/cuda_test_util.h"

namespace pagedllm::kernels {
namespace {

using cuda_test::CpuOps;
using cuda_test::GpuDownload;
using cuda_test::GpuOps;
using cuda_test::GpuPoisoned;
using cuda_test::GpuTensor;
using cuda_test::MostlyIdentical;
using cuda_test::RoundAll;
using cuda_test::RoundTo;
using cuda_test::ToDouble;
using cuda_test::UnitRoundoff;
using test_util::AllClose;
using test_util::DownloadFloats;
using test_util::PoisonedFloats;
using test_util::RandomNormal;
using test_util::RandomUniform;
using test_util::UploadFloats;

// float32: the same formula as the CPU with a float32 (not float64) sum of squares and a
// different summation order: a few ulps, so rtol 1e-5, atol 1e-6 for outputs near zero (the
// CPU backend's own tolerance against float64).
constexpr double kFloatAtol = 1e-6, kFloatRtol = 1e-5;
// 16 bits, against the emulated rounding R(w * R(n)) with n the CPU's float32 normalised value:
// the GPU's n differs from the CPU's by a few float32 ulps, which flips R(n) by one unit (2u) only
// when n sits next to a rounding boundary; the product w * R(n) and its rounding then differ by
// at most 2u + u: rtol 4u. Such flips are rare: at most 2% of elements may differ at all.
constexpr double kMaxDifferingFraction = 0.02;

// HF's 16-bit result from the CPU's float32 normalised values: R(w * R(normed)).
std::vector<float> EmulateWeighting(DType dtype, const std::vector<float>& normed,
                                    const std::vector<float>& w, int64_t hidden) {
  std::vector<float> out(normed.size());
  for (size_t i = 0; i < normed.size(); ++i) {
    out[i] = RoundTo(dtype, w[i % hidden] * RoundTo(dtype, normed[i]));
  }
  return out;
}

// The CPU's RmsNorm of x with unit weight: float32 x * rsqrt(mean(x²) + eps).
std::vector<float> CpuNormalised(const std::vector<float>& x, int64_t rows, int64_t hidden,
                                 float eps) {
  const Tensor out = PoisonedFloats({rows, hidden});
  CpuOps().RmsNorm(UploadFloats({rows, hidden}, x),
                   UploadFloats({hidden}, std::vector<float>(hidden, 1.0f)), eps, out);
  return DownloadFloats(out);
}

void ExpectNormMatches(DType dtype, const std::vector<float>& got, const std::vector<float>& x,
                       const std::vector<float>& w, int64_t rows, int64_t hidden, float eps) {
  const std::vector<float> normed = CpuNormalised(x, rows, hidden, eps);
  if (dtype == DType::kFloat32) {
    const Tensor out = PoisonedFloats({rows, hidden});
    CpuOps().RmsNorm(UploadFloats({rows, hidden}, x), UploadFloats({hidden}, w), eps, out);
    EXPECT_TRUE(AllClose(got, ToDouble(DownloadFloats(out)), kFloatAtol, kFloatRtol));
    return;
  }
  const std::vector<float> expected = EmulateWeighting(dtype, normed, w, hidden);
  EXPECT_TRUE(AllClose(got, ToDouble(expected), kFloatAtol, 4 * UnitRoundoff(dtype)));
  EXPECT_TRUE(MostlyIdentical(got, expected, kMaxDifferingFraction));
}

// hidden: vectorised (a multiple of 8), scalar (odd), one item per thread up to eight, and rows
// past the register path (8193 scalar, 40000 float32 vectorised).
constexpr int64_t kHiddens[] = {1, 3, 8, 64, 127, 1000, 4096, 8192, 8193, 12288, 40000};

TEST(CudaRmsNorm, SweepMatchesCpu) {
  for (DType dtype : cuda_test::kFloatTypes) {
    for (int64_t hidden : kHiddens) {
      for (int64_t rows : {1, 5, 33}) {
        for (float scale : {1.0f, 30.0f}) {
          SCOPED_TRACE(::testing::Message() << DTypeName(dtype) << " hidden=" << hidden
                                            << " rows=" << rows << " scale=" << scale);
          const uint32_t seed = static_cast<uint32_t>(hidden * 131 + rows * 7 + scale);
          const std::vector<float> x = RoundAll(dtype, RandomNormal(rows * hidden, seed, scale));
          const std::vector<float> w = RoundAll(dtype, RandomUniform(hidden, seed + 1, 0.5f, 1.5f));
          const Tensor out = GpuPoisoned(dtype, {rows, hidden});
          GpuOps().RmsNorm(GpuTensor(dtype, {rows, hidden}, x), GpuTensor(dtype, {hidden}, w),
                           1e-5f, out);
          ExpectNormMatches(dtype, GpuDownload(out), x, w, rows, hidden, 1e-5f);
        }
      }
    }
  }
}

TEST(CudaRmsNorm, InPlaceAndZeroRows) {
  for (DType dtype : cuda_test::kFloatTypes) {
    const int64_t rows = 4, hidden = 96;
    std::vector<float> x = RoundAll(dtype, RandomNormal(rows * hidden, 3));
    std::fill(x.begin(), x.begin() + hidden, 0.0f);  // a zero row normalises to zeros
    const std::vector<float> w = RoundAll(dtype, RandomUniform(hidden, 4, 0.5f, 1.5f));
    const Tensor t = GpuTensor(dtype, {rows, hidden}, x);
    GpuOps().RmsNorm(t, GpuTensor(dtype, {hidden}, w), 1e-6f, t);
    const std::vector<float> got = GpuDownload(t);
    EXPECT_EQ(std::vector<float>(got.begin(), got.begin() + hidden),
              std::vector<float>(hidden, 0.0f));
    ExpectNormMatches(dtype, got, x, w, rows, hidden, 1e-6f);
  }
}

TEST(CudaAddRmsNorm, SweepMatchesCpu) {
  for (DType dtype : cuda_test::kFloatTypes) {
    for (int64_t hidden : kHiddens) {
      for (int64_t rows : {1, 6, 17}) {
        for (int alias : {0, 1, 2}) {  // out separate, out = x, out = residual
          SCOPED_TRACE(::testing::Message() << DTypeName(dtype) << " hidden=" << hidden
                                            << " rows=" << rows << " alias=" << alias);
          const uint32_t seed = static_cast<uint32_t>(hidden * 17 + rows + alias);
          const std::vector<float> x = RoundAll(dtype, RandomNormal(rows * hidden, seed));
          const std::vector<float> residual =
              RoundAll(dtype, RandomNormal(rows * hidden, seed + 1, 4.0f));
          const std::vector<float> w = RoundAll(dtype, RandomUniform(hidden, seed + 2, 0.5f, 1.5f));
          const Tensor x_gpu = GpuTensor(dtype, {rows, hidden}, x);
          const Tensor residual_gpu = GpuTensor(dtype, {rows, hidden}, residual);
          const Tensor out = alias == 1   ? x_gpu
                             : alias == 2 ? residual_gpu
                                          : GpuPoisoned(dtype, {rows, hidden});
          GpuOps().AddRmsNorm(x_gpu, residual_gpu, GpuTensor(dtype, {hidden}, w), 1e-5f, out);
          const std::vector<float> got = GpuDownload(out);
          // residual + x: one float32 addition of two dtype values, rounded to dtype (HF adds in
          // dtype): the same operations on both sides, so bitwise equal.
          std::vector<float> sum(rows * hidden);
          for (size_t i = 0; i < sum.size(); ++i) sum[i] = RoundTo(dtype, residual[i] + x[i]);
          if (alias != 2) {
            EXPECT_EQ(GpuDownload(residual_gpu), sum);
          }
          ExpectNormMatches(dtype, got, sum, w, rows, hidden, 1e-5f);
        }
      }
    }
  }
}

TEST(CudaSiluAndMul, SweepMatchesCpu) {
  for (DType dtype : cuda_test::kFloatTypes) {
    for (int64_t intermediate : {1, 5, 8, 128, 1000, 14336}) {
      for (int64_t rows : {1, 7, 64}) {
        SCOPED_TRACE(::testing::Message()
                     << DTypeName(dtype) << " intermediate=" << intermediate << " rows=" << rows);
        const uint32_t seed = static_cast<uint32_t>(intermediate * 3 + rows);
        std::vector<float> gate_up = RandomNormal(rows * 2 * intermediate, seed, 3.0f);
        for (int64_t r = 0; r < rows; ++r) {  // where exp(-g) overflows or silu underflows
          const float extremes[] = {-1000.0f, -100.0f, -20.0f, 0.0f, 20.0f, 100.0f, 1000.0f};
          for (int e = 0; e < 7 && e < intermediate; ++e)
            gate_up[r * 2 * intermediate + e] = extremes[e];
        }
        gate_up = RoundAll(dtype, gate_up);
        const Tensor out = GpuPoisoned(dtype, {rows, intermediate});
        GpuOps().SiluAndMul(GpuTensor(dtype, {rows, 2 * intermediate}, gate_up), out);
        const std::vector<float> got = GpuDownload(out);

        const Tensor cpu_out = PoisonedFloats({rows, intermediate});
        CpuOps().SiluAndMul(UploadFloats({rows, 2 * intermediate}, gate_up), cpu_out);
        if (dtype == DType::kFloat32) {
          // expf (CUDA, <= 2 ulp) vs glibc exp, a division and a product: a few ulps.
          EXPECT_TRUE(AllClose(got, ToDouble(DownloadFloats(cpu_out)), 1e-6, 1e-5));
          continue;
        }
        // HF: R(R(silu(g)) * u). silu(g) from the CPU with up = 1 (the gate half, ones after it).
        std::vector<float> gate_ones(gate_up);
        for (int64_t r = 0; r < rows; ++r) {
          std::fill(gate_ones.begin() + r * 2 * intermediate + intermediate,
                    gate_ones.begin() + (r + 1) * 2 * intermediate, 1.0f);
        }
        const Tensor silu = PoisonedFloats({rows, intermediate});
        CpuOps().SiluAndMul(UploadFloats({rows, 2 * intermediate}, gate_ones), silu);
        const std::vector<float> silu_values = DownloadFloats(silu);
        std::vector<float> expected(rows * intermediate);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t i = 0; i < intermediate; ++i) {
            const float up = gate_up[r * 2 * intermediate + intermediate + i];
            expected[r * intermediate + i] =
                RoundTo(dtype, RoundTo(dtype, silu_values[r * intermediate + i]) * up);
          }
        }
        // As for the norm: a float32 ulp of difference in silu flips R(silu) rarely; then one
        // unit (2u) in the product plus its rounding (u): rtol 4u. atol for float16's
        // subnormal outputs (spacing 2^-24).
        EXPECT_TRUE(
            AllClose(got, ToDouble(expected), std::ldexp(1.0, -24), 4 * UnitRoundoff(dtype)));
        EXPECT_TRUE(MostlyIdentical(got, expected, kMaxDifferingFraction));
      }
    }
  }
}

TEST(CudaNormDeathTest, NamesTheShapes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      GpuOps().RmsNorm(GpuPoisoned(DType::kBFloat16, {2, 8}), GpuPoisoned(DType::kBFloat16, {7}),
                       1e-5f, GpuPoisoned(DType::kBFloat16, {2, 8})),
      "RmsNorm: want x, out: \\[n, hidden\\], weight: \\[hidden\\] \\(x \\[2, 8\\] "
      "bfloat16, weight \\[7\\] bfloat16, out \\[2, 8\\] bfloat16\\)");
  EXPECT_DEATH(GpuOps().SiluAndMul(GpuPoisoned(DType::kFloat16, {2, 8}),
                                   GpuPoisoned(DType::kBFloat16, {2, 4})),
               "SiluAndMul: out must be float16");
}

}  // namespace
}  // namespace pagedllm::kernels
