// PickShardArgmax and FillPlaceholders (a step's sampled tokens become the next step's inputs on
// the device) on the CPU backend.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/device.h"
#include "kernels/ops.h"
#include "tests/kernels/step_tokens_test_util.h"

namespace pagedllm::kernels {
namespace {

TEST(PickShardArgmaxTest, TheLargestShardWinsAndTiesGoToTheLowerId) {
  auto cpu = MakeCpuDevice();
  const float inf = std::numeric_limits<float>::infinity();
  // 3 shards of 100 columns, 5 rows. Row 0: shard 2 largest; row 1: shards 0 and 1 tie -> 0;
  // row 2: shard 1 largest; row 3: everything -inf (NaN rows) -> shard 0's column;
  // row 4: shards 1 and 2 tie above shard 0 -> shard 1.
  const std::vector<float> values = {1, 4, 0, -inf, 0,   // shard 0
                                     2, 4, 9, -inf, 3,   // shard 1
                                     5, 1, 8, -inf, 3};  // shard 2
  const std::vector<int32_t> ids = {10, 11, 12, 0, 14,   //
                                    20, 21, 22, 0, 24,   //
                                    30, 31, 32, 0, 34};
  EXPECT_EQ(RunPickShardArgmax(*cpu, values, ids, 3, 100),
            (std::vector<int32_t>{230, 11, 122, 0, 124}));
  // One shard: the ids as they are.
  EXPECT_EQ(RunPickShardArgmax(*cpu, {1, 2}, {7, 8}, 1, 100), (std::vector<int32_t>{7, 8}));
}

TEST(FillPlaceholdersTest, EachFillTakesItsSampledRow) {
  auto cpu = MakeCpuDevice();
  EXPECT_EQ(RunFillPlaceholders(*cpu, {5, 0, 6, 0, 0}, {1, 2, 3, 0, 4, 2}, {40, 41, 42}),
            (std::vector<int32_t>{5, 42, 6, 40, 42}));
}

TEST(FillPlaceholdersDeathTest, AFillOutsideEitherTensorAborts) {
  auto cpu = MakeCpuDevice();
  EXPECT_DEATH(RunFillPlaceholders(*cpu, {0, 0}, {2, 0}, {40}),
               "FillPlaceholders: fill 0 \\(2 <- 0\\) is outside token_ids \\[2\\]");
  EXPECT_DEATH(RunFillPlaceholders(*cpu, {0, 0}, {1, 1}, {40}), "or sampled \\[1\\]");
}

}  // namespace
}  // namespace pagedllm::kernels
