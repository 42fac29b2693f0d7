// Linear (OpenBLAS sgemm) against a float64 reference over m, n, k including 1 and odd sizes.
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace pagedllm::kernels {
namespace {

using test_util::AllClose;
using test_util::DownloadFloats;
using test_util::PoisonedFloats;
using test_util::RandomUniform;
using test_util::TestOps;
using test_util::UploadFloats;

// y = x · wᵀ in float64, plus the per-element tolerance for a float32 dot product of length k.
// The worst case error of a float32 sum of k products is about k·u·Σ|x||w| (u = 2^-24,
// Higham's γ_k), whatever order OpenBLAS adds in; rounding errors behave like a random walk
// in practice, so we allow 2·sqrt(k)·u·Σ|x||w| + 1e-6, still far below the O(1) error of a
// wrong index or transposition.
void ReferenceLinear(const std::vector<float>& x, const std::vector<float>& w, int64_t m, int64_t n,
                     int64_t k, std::vector<double>* y, std::vector<double>* atol) {
  y->assign(m * n, 0.0);
  atol->assign(m * n, 0.0);
  const double u = FLT_EPSILON / 2;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0.0, abs_sum = 0.0;
      for (int64_t l = 0; l < k; ++l) {
        const double product = static_cast<double>(x[i * k + l]) * w[j * k + l];
        sum += product;
        abs_sum += std::abs(product);
      }
      (*y)[i * n + j] = sum;
      (*atol)[i * n + j] = 1e-6 + 2.0 * std::sqrt(static_cast<double>(k)) * u * abs_sum;
    }
  }
}

TEST(Linear, SweepMatchesFloat64Reference) {
  int cases = 0;
  for (int64_t m : {1, 2, 7, 33, 128}) {
    for (int64_t n : {1, 3, 64, 257}) {
      for (int64_t k : {1, 5, 64, 511, 2048}) {
        SCOPED_TRACE(::testing::Message() << "m=" << m << " n=" << n << " k=" << k);
        const uint32_t seed = static_cast<uint32_t>(m * 1000003 + n * 1009 + k);
        const std::vector<float> x = RandomUniform(m * k, seed);
        const std::vector<float> w = RandomUniform(n * k, seed + 1);
        const Tensor y = PoisonedFloats({m, n});
        TestOps().Linear(UploadFloats({m, k}, x), UploadFloats({n, k}, w), y);
        std::vector<double> expected, atol;
        ReferenceLinear(x, w, m, n, k, &expected, &atol);
        EXPECT_TRUE(AllClose(DownloadFloats(y), expected, atol, /*rtol=*/0.0));
        ++cases;
      }
    }
  }
  EXPECT_EQ(cases, 100);
}

// Inputs and outputs that are views (Slice) into larger buffers, as the model runner makes.
TEST(Linear, WorksOnSlices) {
  const int64_t m = 5, n = 9, k = 16;
  const std::vector<float> big_x = RandomUniform(3 * m * k, 11);
  const std::vector<float> w = RandomUniform(n * k, 12);
  const Tensor x_all = UploadFloats({3 * m, k}, big_x);
  const Tensor y_all = PoisonedFloats({3 * m, n});
  TestOps().Linear(x_all.Slice(m, 2 * m), UploadFloats({n, k}, w), y_all.Slice(m, 2 * m));
  const std::vector<float> x(big_x.begin() + m * k, big_x.begin() + 2 * m * k);
  std::vector<double> expected, atol;
  ReferenceLinear(x, w, m, n, k, &expected, &atol);
  const std::vector<float> y = DownloadFloats(y_all);
  const std::vector<float> middle(y.begin() + m * n, y.begin() + 2 * m * n);
  EXPECT_TRUE(AllClose(middle, expected, atol, 0.0));
  for (int64_t i = 0; i < m * n; ++i) {
    ASSERT_TRUE(std::isnan(y[i])) << "row before the slice was written at " << i;
    ASSERT_TRUE(std::isnan(y[2 * m * n + i])) << "row after the slice was written at " << i;
  }
}

TEST(Linear, EmptyReductionGivesZeros) {
  const Tensor x = PoisonedFloats({3, 0});
  const Tensor w = PoisonedFloats({4, 0});
  const Tensor y = PoisonedFloats({3, 4});
  TestOps().Linear(x, w, y);
  EXPECT_EQ(DownloadFloats(y), std::vector<float>(12, 0.0f));
}

TEST(LinearDeathTest, NamesTheShapes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      TestOps().Linear(PoisonedFloats({3, 5}), PoisonedFloats({4, 6}), PoisonedFloats({3, 4})),
      "Linear: x and weight disagree on k \\(x \\[3, 5\\] float32, weight \\[4, 6\\] "
      "float32, y \\[3, 4\\] float32\\)");
  EXPECT_DEATH(
      TestOps().Linear(PoisonedFloats({3, 5}), PoisonedFloats({4, 5}), PoisonedFloats({4, 3})),
      "y must be \\[m, n\\] = \\[3, 4\\]");
  const Tensor ints = test_util::UploadInts({3, 5}, std::vector<int32_t>(15, 0));
  EXPECT_DEATH(TestOps().Linear(ints, PoisonedFloats({4, 5}), PoisonedFloats({3, 4})),
               "Linear: x must be float32, got \\[3, 5\\] int32");
}

}  // namespace
}  // namespace pagedllm::kernels
