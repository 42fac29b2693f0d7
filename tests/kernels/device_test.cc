// CpuDevice: allocation (alignment, errors), host/device copies, and the device factories.
#include "kernels/device.h"

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_device.h"
#include "tests/kernels/kernel_test_util.h"

namespace pagedllm::kernels {
namespace {

using test_util::TestDevice;

TEST(CpuDevice, Identity) {
  std::unique_ptr<Device> device = MakeCpuDevice();
  EXPECT_EQ(device->type(), DeviceType::kCpu);
  EXPECT_EQ(device->name(), "cpu");
  device->Synchronize();  // nothing to wait for
}

TEST(CpuDevice, AllocationsAre64ByteAligned) {
  for (int64_t n : {0, 1, 3, 17, 1000}) {
    for (DType dtype : {DType::kFloat32, DType::kBFloat16}) {
      const absl::StatusOr<Tensor> t = TestDevice().Allocate(dtype, {n});
      ASSERT_TRUE(t.ok()) << t.status();
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t->raw_data()) % 64, 0u) << n;
      EXPECT_EQ(t->numel(), n);
      EXPECT_EQ(t->bytes(), static_cast<size_t>(n) * DTypeSize(dtype));
    }
  }
}

TEST(CpuDevice, AllocationErrors) {
  const absl::StatusOr<Tensor> negative = TestDevice().Allocate(DType::kFloat32, {2, -1});
  EXPECT_EQ(negative.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(negative.status().message()), ::testing::HasSubstr("[2, -1]"));

  const absl::StatusOr<Tensor> overflow =
      TestDevice().Allocate(DType::kFloat32, {int64_t{1} << 40, int64_t{1} << 40});
  EXPECT_EQ(overflow.status().code(), absl::StatusCode::kResourceExhausted);

#ifndef __SANITIZE_ADDRESS__  // AddressSanitizer aborts on huge requests instead of failing
  // 2^60 bytes: more than any machine has.
  const absl::StatusOr<Tensor> huge = TestDevice().Allocate(DType::kFloat32, {int64_t{1} << 58});
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(huge.status().message()), ::testing::HasSubstr("bytes"));
#endif
}

TEST(CpuDevice, FromHostAndToHostRoundTrip) {
  const std::vector<int32_t> values = {1, -2, 3, -4, 5, -6};
  const absl::StatusOr<Tensor> t = TestDevice().FromHost<int32_t>(DType::kInt32, {2, 3}, values);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(TestDevice().ToHost<int32_t>(*t), values);
  const absl::StatusOr<Tensor> wrong = TestDevice().FromHost<int32_t>(DType::kInt32, {4}, values);
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CpuDevice, DeviceToDeviceCopy) {
  const Tensor a = test_util::UploadFloats({4}, {1, 2, 3, 4});
  const Tensor b = test_util::PoisonedFloats({4});
  TestDevice().CopyDeviceToDevice(b.raw_data(), a.raw_data(), a.bytes());
  EXPECT_EQ(test_util::DownloadFloats(b), (std::vector<float>{1, 2, 3, 4}));
  // Overlapping ranges (memmove semantics).
  TestDevice().CopyDeviceToDevice(a.data<float>() + 1, a.data<float>(), 3 * sizeof(float));
  EXPECT_EQ(test_util::DownloadFloats(a), (std::vector<float>{1, 1, 2, 3}));
}

TEST(CpuDevice, DefaultThreadsFromEnvironment) {
  ASSERT_EQ(setenv("PAGEDLLM_CPU_THREADS", "3", 1), 0);
  EXPECT_EQ(cpu::DefaultCpuThreads(), 3);
  ASSERT_EQ(setenv("PAGEDLLM_CPU_THREADS", "zero", 1), 0);
  EXPECT_GE(cpu::DefaultCpuThreads(), 1);
  ASSERT_EQ(unsetenv("PAGEDLLM_CPU_THREADS"), 0);
  EXPECT_GE(cpu::DefaultCpuThreads(), 1);
}

// Only in builds without CUDA (a CUDA build has the real device: its tests carry label gpu), so
// no build runs it as a skip counted as a pass.
#ifndef PAGEDLLM_WITH_CUDA
TEST(CudaDevice, UnimplementedWithoutCuda) {
  const absl::StatusOr<std::unique_ptr<Device>> device = MakeCudaDevice(0);
  EXPECT_EQ(device.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(device.status().message()), ::testing::HasSubstr("without CUDA"));
}
#endif

TEST(CpuOpsDeathTest, RejectsTensorsFromAnotherDevice) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::unique_ptr<Device> other = MakeCpuDevice();
  const Tensor x = *other->Allocate(DType::kFloat32, {2, 4});
  EXPECT_DEATH(TestDevice().ops().Linear(x, test_util::PoisonedFloats({3, 4}),
                                         test_util::PoisonedFloats({2, 3})),
               "Linear: x \\[2, 4\\] float32 lives on a cpu device other than the ops' own");
}

}  // namespace
}  // namespace pagedllm::kernels
