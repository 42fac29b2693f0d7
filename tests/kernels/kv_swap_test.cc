// Block swapping (kernels/kv_swap.h) on the CPU device: run merging, argument checks, and round
// trips through host memory (the CUDA twin is cuda/cuda_kv_swap_test.cc).
#include "kernels/kv_swap.h"

#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"
#include "tests/kernels/kv_swap_test_util.h"

namespace pagedllm::kernels {
namespace {

TEST(MergeBlockRuns, MergesOnlyWhereBothSidesAreConsecutive) {
  const std::vector<BlockSwap> swaps = {{4, 10}, {5, 11},  {6, 12}, {7, 20},
                                        {9, 21}, {10, 22}, {3, 9}};
  const std::vector<BlockRun> runs = MergeBlockRuns(swaps);
  ASSERT_EQ(runs.size(), 4u);
  EXPECT_EQ(runs[0].device_block, 4);
  EXPECT_EQ(runs[0].host_block, 10);
  EXPECT_EQ(runs[0].count, 3);
  EXPECT_EQ(runs[1].device_block, 7);
  EXPECT_EQ(runs[1].count, 1);
  EXPECT_EQ(runs[2].device_block, 9);
  EXPECT_EQ(runs[2].host_block, 21);
  EXPECT_EQ(runs[2].count, 2);
  EXPECT_EQ(runs[3].device_block, 3);  // consecutive only backwards: its own run
  EXPECT_EQ(runs[3].count, 1);
  EXPECT_TRUE(MergeBlockRuns({}).empty());
}

TEST(CheckBlockSwaps, NamesTheBadId) {
  const absl::Status device_out =
      CheckBlockSwaps({{0, 0}, {8, 1}}, 8, 4, SwapDirection::kDeviceToHost);
  EXPECT_EQ(device_out.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(device_out.message(), "swap out: device block 8 is outside [0, 8)");
  const absl::Status host_in = CheckBlockSwaps({{0, -1}}, 8, 4, SwapDirection::kHostToDevice);
  EXPECT_EQ(host_in.message(), "swap in: host block -1 is outside [0, 4)");
  const absl::Status no_host = CheckBlockSwaps({{0, 0}}, 8, 0, SwapDirection::kDeviceToHost);
  EXPECT_EQ(no_host.message(), "swap out: host block 0 is outside [0, 0)");
}

TEST(CheckBlockSwaps, RefusesADestinationTwice) {
  // Two device blocks into one host block would race; one device block out to two host blocks
  // is fine (a copy).
  EXPECT_EQ(CheckBlockSwaps({{1, 2}, {3, 2}}, 8, 4, SwapDirection::kDeviceToHost).message(),
            "swap out: host block 2 is a destination twice");
  EXPECT_TRUE(CheckBlockSwaps({{1, 2}, {1, 3}}, 8, 4, SwapDirection::kDeviceToHost).ok());
  EXPECT_EQ(CheckBlockSwaps({{5, 0}, {5, 1}}, 8, 4, SwapDirection::kHostToDevice).message(),
            "swap in: device block 5 is a destination twice");
}

TEST(SwapBlocks, RoundTripOnTheCpu) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    test_util::CheckSwapRoundTrip(test_util::TestDevice(), /*num_blocks=*/40,
                                  /*block_elems=*/16 * 2 * 8 + static_cast<int>(seed),
                                  /*num_host_blocks=*/16, seed);
  }
}

}  // namespace
}  // namespace pagedllm::kernels
