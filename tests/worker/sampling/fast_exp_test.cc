#include "worker/sampling/fast_exp.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"

namespace pagedllm::worker {
namespace {

TEST(FastExpTest, RelativeErrorBelowThreeTenMillionthsOnTheRange) {
  double worst = 0.0;
  float worst_at = 0.0f;
  for (int i = 0; i <= 2000000; ++i) {
    const float x = -87.3f * static_cast<float>(i) / 2000000.0f;
    const double exact = std::exp(static_cast<double>(x));
    const double error = std::abs(FastExpNonPositive(x) - exact) / exact;
    if (error > worst) {
      worst = error;
      worst_at = x;
    }
  }
  EXPECT_LT(worst, 3e-7) << "at x = " << worst_at;
}

TEST(FastExpTest, SpecialValues) {
  EXPECT_EQ(FastExpNonPositive(0.0f), 1.0f);
  EXPECT_EQ(FastExpNonPositive(-0.0f), 1.0f);
  EXPECT_EQ(FastExpNonPositive(5.0f), 1.0f);  // outside the domain: clamped to 0
  EXPECT_EQ(FastExpNonPositive(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(FastExpNonPositive(std::nanf("")), 0.0f);
  EXPECT_EQ(FastExpNonPositive(-std::nanf("")), 0.0f);
  EXPECT_EQ(FastExpNonPositive(-87.4f), 0.0f);
  EXPECT_EQ(FastExpNonPositive(-1e30f), 0.0f);
  EXPECT_GT(FastExpNonPositive(-87.3f), 0.0f);
  EXPECT_NEAR(FastExpNonPositive(-87.3f) / std::exp(double{-87.3f}), 1.0, 1e-6);
  // Monotone non-decreasing on a fine grid (top-k/top-p/min-p rely on it).
  float previous = 0.0f;
  for (float x = -30.0f; x <= 0.0f; x += 1e-4f) {
    const float value = FastExpNonPositive(x);
    ASSERT_GE(value, previous) << "at x = " << x;
    previous = value;
  }
}

}  // namespace
}  // namespace pagedllm::worker
