// PickShardArgmax and FillPlaceholders on CUDA against the CPU backend (itself tested in
// tests/kernels/step_tokens_test.cc), over random shapes.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kernels/device.h"
#include "kernels/ops.h"
#include "tests/kernels/step_tokens_test_util.h"

namespace pagedllm::kernels {
namespace {

TEST(StepTokensTest, CudaMatchesCpu) {
  absl::StatusOr<std::unique_ptr<Device>> gpu = MakeCudaDevice(0);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  auto cpu = MakeCpuDevice();
  std::mt19937 rng(11);
  for (int64_t shards : {1, 2, 3, 8}) {
    for (int64_t rows : {1, 7, 256, 1000, 2048}) {
      std::vector<float> values(shards * rows);
      std::vector<int32_t> ids(shards * rows);
      // Few distinct values, so ties between shards are common.
      for (float& v : values) v = static_cast<float>(rng() % 4);
      for (int32_t& id : ids) id = static_cast<int32_t>(rng() % 32000);
      EXPECT_EQ(RunPickShardArgmax(**gpu, values, ids, shards, 32000),
                RunPickShardArgmax(*cpu, values, ids, shards, 32000))
          << shards << " shards x " << rows << " rows";
    }
  }
  for (int64_t tokens : {1, 5, 300, 4096}) {
    std::vector<int32_t> token_ids(tokens), fills, sampled(tokens / 2 + 1);
    for (int32_t& t : token_ids) t = static_cast<int32_t>(rng() % 1000);
    for (int32_t& t : sampled) t = static_cast<int32_t>(rng() % 128256);
    for (int64_t i = 0; i < tokens; i += 1 + static_cast<int64_t>(rng() % 3)) {
      fills.push_back(static_cast<int32_t>(i));
      fills.push_back(static_cast<int32_t>(rng() % sampled.size()));
    }
    EXPECT_EQ(RunFillPlaceholders(**gpu, token_ids, fills, sampled),
              RunFillPlaceholders(*cpu, token_ids, fills, sampled))
        << tokens << " tokens, " << fills.size() / 2 << " fills";
  }
}

}  // namespace
}  // namespace pagedllm::kernels
