// ArgmaxRows (greedy decoding on the device) on the CPU backend.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/device.h"
#include "kernels/ops.h"
#include "tests/kernels/argmax_test_util.h"

namespace pagedllm::kernels {
namespace {

TEST(ArgmaxRowsTest, CpuFindsTheFirstMaximumOfTheValidColumns) {
  auto cpu = MakeCpuDevice();
  const float inf = std::numeric_limits<float>::infinity();
  // row 0: tie between columns 1 and 3 -> 1; row 1: NaN ignored -> column 2;
  // row 2: the maximum lies past the valid columns -> column 0; row 3: all -inf -> column 0.
  const std::vector<float> logits = {0, 5, 1, 5, 2, NAN,  1,    3,    2,    0,
                                     1, 0, 0, 0, 9, -inf, -inf, -inf, -inf, 9};
  const ArgmaxResult got = RunArgmax(*cpu, DType::kFloat32, logits, 4, 5, 4);
  EXPECT_EQ(got.ids, (std::vector<int32_t>{1, 2, 0, 0}));
  EXPECT_EQ(got.values[0], 5.0f);
  EXPECT_EQ(got.values[1], 3.0f);
  EXPECT_EQ(got.values[2], 1.0f);
  EXPECT_EQ(got.values[3], -inf);
  const ArgmaxResult none = RunArgmax(*cpu, DType::kFloat32, logits, 4, 5, 0);
  EXPECT_EQ(none.ids, (std::vector<int32_t>{0, 0, 0, 0}));
}

}  // namespace
}  // namespace pagedllm::kernels
