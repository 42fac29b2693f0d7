// CudaDevice: identity, the caching allocator (rounding, reuse, peak, out of memory with its
// retry after emptying the cache) and copies whose host source dies right after the call.
#include "kernels/cuda/cuda_device.h"

#include <cstdint>
#include <iostream>
#include <memory>
#include <numeric>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/kernels/cuda/cuda_test_util.h"

namespace pagedllm::kernels {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::unique_ptr<CudaDevice> NewDevice() {
  absl::StatusOr<std::unique_ptr<CudaDevice>> device = CudaDevice::Create(0);
  PAGEDLLM_CHECK_OK(device.status());
  return *std::move(device);
}

constexpr size_t kMiB = size_t{1} << 20;

TEST(CudaDevice, Identity) {
  absl::StatusOr<std::unique_ptr<Device>> device = MakeCudaDevice(0);
  ASSERT_TRUE(device.ok()) << device.status();
  EXPECT_EQ((*device)->type(), DeviceType::kCuda);
  EXPECT_THAT((*device)->name(), StartsWith("cuda:0 ("));
  EXPECT_NE((*device)->native_stream(), nullptr);
  std::cout << "device: " << (*device)->name() << "\n";
  (*device)->Synchronize();
}

TEST(CudaDevice, BadOrdinalIsInvalidArgument) {
  const absl::StatusOr<std::unique_ptr<Device>> device = MakeCudaDevice(1000);
  EXPECT_EQ(device.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(device.status().message()), HasSubstr("out of range"));
}

TEST(CudaDevice, RoundsSizesAndReusesFreedBlocks) {
  std::unique_ptr<CudaDevice> device = NewDevice();
  void* small = nullptr;
  {
    const absl::StatusOr<Tensor> t = device->Allocate(DType::kFloat32, {1});  // 4 B -> 512 B
    ASSERT_TRUE(t.ok()) << t.status();
    small = t->raw_data();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(small) % 256, 0u);
    EXPECT_EQ(device->bytes_in_use(), 512u);
    EXPECT_EQ(device->bytes_reserved(), 512u);
  }
  EXPECT_EQ(device->bytes_in_use(), 0u);
  EXPECT_EQ(device->bytes_reserved(), 512u);  // kept in the cache
  {
    const absl::StatusOr<Tensor> t = device->Allocate(DType::kBFloat16, {200});  // 400 B
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t->raw_data(), small);  // the cached block again, no cudaMalloc
    EXPECT_EQ(device->bytes_reserved(), 512u);
  }
  void* large = nullptr;
  {
    const absl::StatusOr<Tensor> t = device->Allocate(DType::kFloat32, {3 * (1 << 18)});  // 3 MiB
    ASSERT_TRUE(t.ok());
    large = t->raw_data();
    EXPECT_EQ(device->bytes_in_use(), 4 * kMiB);  // 2 MiB granules
    EXPECT_EQ(device->peak_bytes_in_use(), 4 * kMiB);
  }
  {
    const absl::StatusOr<Tensor> t = device->Allocate(DType::kFloat32, {(7 << 18) / 2});  // 3.5 MiB
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t->raw_data(), large);
    EXPECT_EQ(device->bytes_reserved(), 4 * kMiB + 512);
  }
  // A much smaller request does not take the 4 MiB block (at most 1/4 slack).
  {
    const absl::StatusOr<Tensor> t = device->Allocate(DType::kFloat32, {1 << 18});  // 1 MiB
    ASSERT_TRUE(t.ok());
    EXPECT_NE(t->raw_data(), large);
    EXPECT_EQ(device->bytes_in_use(), kMiB);
  }
  device->ResetPeak();
  EXPECT_EQ(device->peak_bytes_in_use(), 0u);
  const absl::StatusOr<MemoryStats> stats = device->memory_stats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_GT(stats->total, stats->free);
  EXPECT_EQ(stats->in_use, 0u);
  device->EmptyCache();
  EXPECT_EQ(device->bytes_reserved(), 0u);
}

TEST(CudaDevice, OutOfMemoryIsResourceExhaustedAndTheDeviceStillWorks) {
  std::unique_ptr<CudaDevice> device = NewDevice();
  const absl::StatusOr<Tensor> keep = device->Allocate(DType::kFloat32, {1000});
  ASSERT_TRUE(keep.ok());
  const int64_t elements = int64_t{1} << 40;  // 4 TiB of float32
  const absl::StatusOr<Tensor> huge = device->Allocate(DType::kFloat32, {elements});
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kResourceExhausted);
  const std::string message(huge.status().message());
  EXPECT_THAT(message, HasSubstr("out of memory allocating 4398046511104 bytes"));
  EXPECT_THAT(message, HasSubstr("4096 bytes in use"));
  EXPECT_THAT(message, HasSubstr("cuda:0"));
  // The failed cudaMalloc must not linger as the "last error" that the next launch check reads.
  const Tensor in = cuda_test::UploadBytes(*device, DType::kFloat32, {2},
                                           cuda_test::Encode(DType::kFloat32, {1.5f, -2.0f}));
  const absl::StatusOr<Tensor> out = device->Allocate(DType::kBFloat16, {2});
  ASSERT_TRUE(out.ok());
  device->ops().Cast(in, *out);
  EXPECT_EQ(cuda_test::Decode(DType::kBFloat16, cuda_test::DownloadBytes(*device, *out)),
            (std::vector<float>{1.5f, -2.0f}));
}

// A request that fits only once the cached blocks go back to CUDA succeeds: the allocator
// empties its cache and retries.
TEST(CudaDevice, EmptiesTheCacheAndRetriesBeforeFailing) {
  std::unique_ptr<CudaDevice> device = NewDevice();
  const absl::StatusOr<std::pair<size_t, size_t>> info = device->MemoryInfo();
  ASSERT_TRUE(info.ok());
  const size_t free = info->first;
  const int64_t first = static_cast<int64_t>(free / 100 * 45 / 4);   // 45% of free, float32
  const int64_t second = static_cast<int64_t>(free / 100 * 65 / 4);  // 65%: no reuse of the 45%
  {
    const absl::StatusOr<Tensor> a = device->Allocate(DType::kFloat32, {first});
    ASSERT_TRUE(a.ok()) << a.status();
  }
  EXPECT_GT(device->bytes_reserved(), free / 100 * 44);  // cached, not returned
  const absl::StatusOr<Tensor> b = device->Allocate(DType::kFloat32, {second});
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(device->bytes_reserved(), device->bytes_in_use());  // the 45% block went back
}

TEST(CudaDevice, CopiesFromDyingHostBuffers) {
  std::unique_ptr<CudaDevice> device = NewDevice();
  // Small (staged) and large (synchronised) copies; more small ones than staging slots.
  const std::vector<size_t> sizes = {4,  100, 4096,          1000,    1 << 20, 12,
                                     64, 256, (1 << 20) + 4, 3 << 20, 8,       16};
  std::vector<Tensor> tensors;
  for (size_t s = 0; s < sizes.size(); ++s) {
    const size_t n = sizes[s] / 4;
    auto host = std::make_unique<std::vector<int32_t>>(n);
    std::iota(host->begin(), host->end(), static_cast<int32_t>(s * 1000));
    absl::StatusOr<Tensor> t = device->Allocate(DType::kInt32, {static_cast<int64_t>(n)});
    ASSERT_TRUE(t.ok());
    device->CopyHostToDevice(t->raw_data(), host->data(), t->bytes());
    std::fill(host->begin(), host->end(),
              -1);  // overwritten, then freed, before the copy is waited on
    host.reset();
    tensors.push_back(*std::move(t));
  }
  for (size_t s = 0; s < sizes.size(); ++s) {
    // Through a device-to-device copy as well.
    absl::StatusOr<Tensor> copy = device->Allocate(DType::kInt32, tensors[s].shape());
    ASSERT_TRUE(copy.ok());
    device->CopyDeviceToDevice(copy->raw_data(), tensors[s].raw_data(), tensors[s].bytes());
    const std::vector<int32_t> back = device->ToHost<int32_t>(*copy);
    std::vector<int32_t> expected(sizes[s] / 4);
    std::iota(expected.begin(), expected.end(), static_cast<int32_t>(s * 1000));
    EXPECT_EQ(back, expected) << "size " << sizes[s];
  }
}

TEST(CudaDeviceDeathTest, FreeingAForeignPointerAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(NewDevice()->Free(reinterpret_cast<void*>(0x1000)), "did not allocate");
}

}  // namespace
}  // namespace pagedllm::kernels
