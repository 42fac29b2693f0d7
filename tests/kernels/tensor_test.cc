// Tensor and DType plumbing: names, views (Slice, Reshape), shape strings, buffer ownership.
#include "kernels/tensor.h"

#include <cstdint>
#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/device.h"
#include "tests/kernels/kernel_test_util.h"

namespace pagedllm::kernels {
namespace {

using test_util::TestDevice;
using test_util::UploadFloats;

TEST(DType, SizesNamesAndParsing) {
  struct Row {
    DType dtype;
    size_t size;
    const char* name;
  };
  for (const Row& row : {Row{DType::kFloat32, 4, "float32"}, Row{DType::kBFloat16, 2, "bfloat16"},
                         Row{DType::kFloat16, 2, "float16"}, Row{DType::kInt32, 4, "int32"}}) {
    EXPECT_EQ(DTypeSize(row.dtype), row.size) << row.name;
    EXPECT_STREQ(DTypeName(row.dtype), row.name);
    absl::StatusOr<DType> parsed = DTypeFromName(row.name);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, row.dtype);
  }
  EXPECT_EQ(*DTypeFromName("bf16"), DType::kBFloat16);
  EXPECT_EQ(*DTypeFromName("fp16"), DType::kFloat16);
  const absl::StatusOr<DType> bad = DTypeFromName("float64");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("\"float64\""));
}

TEST(Tensor, DefaultIsEmpty) {
  Tensor t;
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.numel(), 0);
  EXPECT_EQ(t.bytes(), 0u);
  EXPECT_EQ(t.device(), nullptr);
  EXPECT_EQ(t.ShapeString(), "[] (empty)");
}

TEST(Tensor, ShapeNumelAndString) {
  const Tensor t = *TestDevice().Allocate(DType::kBFloat16, {2, 3, 4});
  EXPECT_FALSE(t.empty());
  EXPECT_EQ(t.rank(), 3);
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.bytes(), 48u);
  EXPECT_EQ(t.dim(0), 2);
  EXPECT_EQ(t.dim(-1), 4);
  EXPECT_EQ(t.dim(-3), 2);
  EXPECT_EQ(t.device_type(), DeviceType::kCpu);
  EXPECT_EQ(t.device(), &TestDevice());
  EXPECT_EQ(t.ShapeString(), "[2, 3, 4] bfloat16");
  const Tensor scalar = *TestDevice().Allocate(DType::kInt32, {});
  EXPECT_EQ(scalar.numel(), 1);
  EXPECT_EQ(scalar.ShapeString(), "[] int32");
}

TEST(Tensor, SliceSharesTheBuffer) {
  std::vector<float> values(4 * 2 * 3);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i);
  const Tensor t = UploadFloats({4, 2, 3}, values);
  const Tensor middle = t.Slice(1, 3);
  EXPECT_EQ(middle.shape(), (std::vector<int64_t>{2, 2, 3}));
  EXPECT_EQ(middle.data<float>(), t.data<float>() + 6);
  EXPECT_EQ(middle.data<float>()[0], 6.0f);
  middle.data<float>()[0] = -1.0f;  // writes through to the parent
  EXPECT_EQ(t.data<float>()[6], -1.0f);
  // Slices of slices, and empty slices.
  const Tensor inner = middle.Slice(1, 2);
  EXPECT_EQ(inner.data<float>(), t.data<float>() + 12);
  EXPECT_EQ(t.Slice(4, 4).numel(), 0);
  EXPECT_EQ(t.Slice(0, 4).data<float>(), t.data<float>());
}

TEST(Tensor, ViewsKeepTheBufferAlive) {
  Tensor slice;
  {
    const Tensor t = UploadFloats({3, 2}, {1, 2, 3, 4, 5, 6});
    slice = t.Slice(2, 3).Reshape({2});
  }
  EXPECT_EQ(test_util::DownloadFloats(slice), (std::vector<float>{5, 6}));
}

TEST(Tensor, ReshapeKeepsData) {
  const Tensor t = UploadFloats({2, 6}, std::vector<float>(12, 1.0f));
  const Tensor r = t.Reshape({3, 2, 2});
  EXPECT_EQ(r.shape(), (std::vector<int64_t>{3, 2, 2}));
  EXPECT_EQ(r.raw_data(), t.raw_data());
  EXPECT_EQ(r.dtype(), DType::kFloat32);
}

TEST(TensorDeathTest, BadViewsAbortWithShapes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const Tensor t = UploadFloats({2, 6}, std::vector<float>(12, 1.0f));
  EXPECT_DEATH(t.Reshape({5, 2}),
               "Reshape of \\[2, 6\\] float32 to \\[5, 2\\] changes the number of elements");
  EXPECT_DEATH(t.Slice(1, 3), "Slice \\[1, 3\\) out of range for \\[2, 6\\] float32");
  EXPECT_DEATH(t.Slice(-1, 1), "out of range");
  EXPECT_DEATH(Tensor().Slice(0, 0), "Slice needs a tensor of rank >= 1");
}

// A device that only counts allocations, to see Buffer free its memory exactly once.
class CountingDevice : public Device {
 public:
  DeviceType type() const override { return DeviceType::kCpu; }
  std::string name() const override { return "counting"; }
  absl::StatusOr<void*> AllocateBytes(size_t bytes) override {
    ++allocations;
    return static_cast<void*>(new char[bytes + 1]);
  }
  void Free(void* data) override {
    ++frees;
    delete[] static_cast<char*>(data);
  }
  void CopyHostToDevice(void*, const void*, size_t) override {}
  void CopyDeviceToHost(void*, const void*, size_t) override {}
  void CopyDeviceToDevice(void*, const void*, size_t) override {}
  void Synchronize() override {}
  Ops& ops() override { std::abort(); }

  int allocations = 0;
  int frees = 0;
};

TEST(Buffer, FreedOnceWhenTheLastViewGoes) {
  CountingDevice device;
  {
    const Tensor t = *device.Allocate(DType::kFloat32, {4, 4});
    Tensor copy = t;
    const Tensor view = t.Slice(1, 2);
    EXPECT_EQ(device.allocations, 1);
    copy = Tensor();
    EXPECT_EQ(device.frees, 0);
  }
  EXPECT_EQ(device.frees, 1);
}

}  // namespace
}  // namespace pagedllm::kernels
