// RmsNorm, AddRmsNorm and SiluAndMul against float64 references.
#include <cmath>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace pagedllm::kernels {
namespace {

using test_util::AllClose;
using test_util::BitwiseEqual;
using test_util::DownloadFloats;
using test_util::PoisonedFloats;
using test_util::RandomNormal;
using test_util::RandomUniform;
using test_util::TestOps;
using test_util::UploadFloats;

// Hugging Face LlamaRMSNorm in exact arithmetic: x / sqrt(mean(x²) + eps) * weight.
std::vector<double> ReferenceRmsNorm(const std::vector<float>& x, const std::vector<float>& w,
                                     int64_t rows, int64_t hidden, float eps) {
  std::vector<double> out(rows * hidden);
  for (int64_t r = 0; r < rows; ++r) {
    double sum_squares = 0.0;
    for (int64_t i = 0; i < hidden; ++i)
      sum_squares += static_cast<double>(x[r * hidden + i]) * x[r * hidden + i];
    const double inv_rms = 1.0 / std::sqrt(sum_squares / hidden + static_cast<double>(eps));
    for (int64_t i = 0; i < hidden; ++i) {
      out[r * hidden + i] = static_cast<double>(x[r * hidden + i]) * inv_rms * w[i];
    }
  }
  return out;
}

// The norm is a handful of float32 roundings per element (variance, sqrt, two products):
// a few ulps, so rtol 1e-5 with atol 1e-6 for outputs near zero.
constexpr double kNormAtol = 1e-6, kNormRtol = 1e-5;

TEST(RmsNorm, SweepMatchesFloat64Reference) {
  for (int64_t hidden : {1, 3, 64, 127, 1024, 4096, 8192}) {
    for (int64_t rows : {1, 5, 33}) {
      for (float scale : {1.0f, 300.0f}) {  // 300: sum of squares far from 1
        for (float eps : {1e-5f, 1e-6f}) {
          SCOPED_TRACE(::testing::Message() << "hidden=" << hidden << " rows=" << rows
                                            << " scale=" << scale << " eps=" << eps);
          const uint32_t seed = static_cast<uint32_t>(hidden * 131 + rows * 7 + scale);
          const std::vector<float> x = RandomNormal(rows * hidden, seed, scale);
          const std::vector<float> w = RandomUniform(hidden, seed + 1, 0.5f, 1.5f);
          const Tensor out = PoisonedFloats({rows, hidden});
          TestOps().RmsNorm(UploadFloats({rows, hidden}, x), UploadFloats({hidden}, w), eps, out);
          EXPECT_TRUE(AllClose(DownloadFloats(out), ReferenceRmsNorm(x, w, rows, hidden, eps),
                               kNormAtol, kNormRtol));
        }
      }
    }
  }
}

// All-zero rows normalise to zero (eps keeps the division finite).
TEST(RmsNorm, ZeroRowGivesZeros) {
  const Tensor out = PoisonedFloats({2, 8});
  TestOps().RmsNorm(UploadFloats({2, 8}, std::vector<float>(16, 0.0f)),
                    UploadFloats({8}, std::vector<float>(8, 1.0f)), 1e-6f, out);
  EXPECT_EQ(DownloadFloats(out), std::vector<float>(16, 0.0f));
}

TEST(RmsNorm, InPlace) {
  const int64_t rows = 4, hidden = 96;
  const std::vector<float> x = RandomNormal(rows * hidden, 3);
  const std::vector<float> w = RandomUniform(hidden, 4, 0.5f, 1.5f);
  const Tensor t = UploadFloats({rows, hidden}, x);
  TestOps().RmsNorm(t, UploadFloats({hidden}, w), 1e-5f, t);
  EXPECT_TRUE(AllClose(DownloadFloats(t), ReferenceRmsNorm(x, w, rows, hidden, 1e-5f), kNormAtol,
                       kNormRtol));
}

TEST(AddRmsNorm, SweepMatchesFloat64Reference) {
  for (int64_t hidden : {1, 7, 64, 1000, 4096}) {
    for (int64_t rows : {1, 6, 17}) {
      for (bool in_place : {false, true}) {  // in place: out is x, as a layer loop may do
        SCOPED_TRACE(::testing::Message()
                     << "hidden=" << hidden << " rows=" << rows << " in_place=" << in_place);
        const uint32_t seed = static_cast<uint32_t>(hidden * 17 + rows);
        const std::vector<float> x = RandomNormal(rows * hidden, seed);
        const std::vector<float> residual = RandomNormal(rows * hidden, seed + 1, 4.0f);
        const std::vector<float> w = RandomUniform(hidden, seed + 2, 0.5f, 1.5f);
        const Tensor x_tensor = UploadFloats({rows, hidden}, x);
        const Tensor residual_tensor = UploadFloats({rows, hidden}, residual);
        const Tensor out = in_place ? x_tensor : PoisonedFloats({rows, hidden});
        TestOps().AddRmsNorm(x_tensor, residual_tensor, UploadFloats({hidden}, w), 1e-5f, out);
        // residual += x is one float32 addition per element: bitwise exact.
        std::vector<float> sum(rows * hidden);
        for (size_t i = 0; i < sum.size(); ++i) sum[i] = residual[i] + x[i];
        EXPECT_TRUE(BitwiseEqual(DownloadFloats(residual_tensor), sum));
        EXPECT_TRUE(AllClose(DownloadFloats(out), ReferenceRmsNorm(sum, w, rows, hidden, 1e-5f),
                             kNormAtol, kNormRtol));
      }
    }
  }
}

TEST(SiluAndMul, SweepMatchesFloat64Reference) {
  for (int64_t intermediate : {1, 5, 128, 1000, 11008}) {
    for (int64_t rows : {1, 7}) {
      SCOPED_TRACE(::testing::Message() << "intermediate=" << intermediate << " rows=" << rows);
      const uint32_t seed = static_cast<uint32_t>(intermediate * 3 + rows);
      std::vector<float> gate_up = RandomNormal(rows * 2 * intermediate, seed, 3.0f);
      // Extremes where exp(-g) overflows or silu underflows.
      for (int64_t r = 0; r < rows; ++r) {
        const float extremes[] = {-1000.0f, -100.0f, -20.0f, 0.0f, 20.0f, 100.0f, 1000.0f};
        for (int e = 0; e < 7 && e < intermediate; ++e)
          gate_up[r * 2 * intermediate + e] = extremes[e];
      }
      const Tensor out = PoisonedFloats({rows, intermediate});
      TestOps().SiluAndMul(UploadFloats({rows, 2 * intermediate}, gate_up), out);
      std::vector<double> expected(rows * intermediate);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t i = 0; i < intermediate; ++i) {
          const double g = gate_up[r * 2 * intermediate + i];
          const double u = gate_up[r * 2 * intermediate + intermediate + i];
          expected[r * intermediate + i] = g / (1.0 + std::exp(-g)) * u;
        }
      }
      // exp, a division and a product in float32: a few ulps; atol for the underflowing tail.
      EXPECT_TRUE(AllClose(DownloadFloats(out), expected, /*atol=*/1e-6, /*rtol=*/1e-5));
    }
  }
}

TEST(NormDeathTest, NamesTheShapes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      TestOps().RmsNorm(PoisonedFloats({2, 8}), PoisonedFloats({7}), 1e-5f, PoisonedFloats({2, 8})),
      "RmsNorm: want x, out: \\[n, hidden\\], weight: \\[hidden\\] \\(x \\[2, 8\\] "
      "float32, weight \\[7\\] float32, out \\[2, 8\\] float32\\)");
  EXPECT_DEATH(TestOps().AddRmsNorm(PoisonedFloats({2, 8}), PoisonedFloats({3, 8}),
                                    PoisonedFloats({8}), 1e-5f, PoisonedFloats({2, 8})),
               "AddRmsNorm: residual must match x");
  EXPECT_DEATH(TestOps().SiluAndMul(PoisonedFloats({2, 8}), PoisonedFloats({2, 8})),
               "SiluAndMul: want gate_up: \\[n, 2 \\* intermediate\\]");
}

}  // namespace
}  // namespace pagedllm::kernels
