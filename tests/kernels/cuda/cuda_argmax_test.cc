// ArgmaxRows on CUDA against the CPU backend (itself tested in tests/kernels/argmax_test.cc).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/device.h"
#include "kernels/ops.h"
#include "tests/kernels/argmax_test_util.h"

namespace pagedllm::kernels {
namespace {

TEST(ArgmaxRowsTest, CudaMatchesCpu) {
  absl::StatusOr<std::unique_ptr<Device>> gpu = MakeCudaDevice(0);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  auto cpu = MakeCpuDevice();
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (int64_t cols : {1, 7, 512, 4096, 128256}) {
    for (int64_t rows : {1, 3, 64}) {
      for (DType dtype : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
        std::vector<float> logits(rows * cols);
        for (float& v : logits) v = normal(rng);
        if (cols > 4) logits[2] = logits[cols - 1] = 1000.0f;  // a tie in row 0: column 2 wins
        const int64_t valid = cols > 10 ? cols - 3 : cols;
        // The CPU reference sees the same rounded values as the GPU.
        Tensor rounded_gpu = *(*gpu)->FromHost(DType::kFloat32, {rows, cols}, logits);
        Tensor typed = *(*gpu)->Allocate(dtype, {rows, cols});
        (*gpu)->ops().Cast(rounded_gpu, typed);
        (*gpu)->ops().Cast(typed, rounded_gpu);
        const std::vector<float> rounded = (*gpu)->ToHost<float>(rounded_gpu);
        const ArgmaxResult want = RunArgmax(*cpu, DType::kFloat32, rounded, rows, cols, valid);
        const ArgmaxResult got = RunArgmax(**gpu, dtype, logits, rows, cols, valid);
        EXPECT_EQ(got.ids, want.ids)
            << "cols " << cols << " rows " << rows << " " << DTypeName(dtype);
        EXPECT_EQ(got.values, want.values);
      }
    }
  }
}

}  // namespace
}  // namespace pagedllm::kernels
