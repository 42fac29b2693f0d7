// Helpers for the kernel tests: one CPU device per test binary, seeded random data, tensors
// poisoned with NaN (so an op that leaves an element unwritten fails), and an all-close
// comparison of float32 results against float64 references that names the worst element.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "gtest/gtest.h"
#include "kernels/device.h"
#include "kernels/ops.h"
#include "kernels/tensor.h"

namespace pagedllm::kernels::test_util {

// The CPU device shared by the tests of one binary.
inline Device& TestDevice() {
  static Device* device = MakeCpuDevice().release();
  return *device;
}

inline Ops& TestOps() { return TestDevice().ops(); }

inline std::vector<float> RandomUniform(size_t n, uint32_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> values(n);
  for (float& v : values) v = dist(rng);
  return values;
}

inline std::vector<float> RandomNormal(size_t n, uint32_t seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> values(n);
  for (float& v : values) v = dist(rng);
  return values;
}

template <typename T>
Tensor Upload(DType dtype, std::vector<int64_t> shape, const std::vector<T>& values) {
  absl::StatusOr<Tensor> tensor = TestDevice().FromHost<T>(dtype, std::move(shape), values);
  PAGEDLLM_CHECK_OK(tensor.status());
  return *std::move(tensor);
}

inline Tensor UploadFloats(std::vector<int64_t> shape, const std::vector<float>& values) {
  return Upload<float>(DType::kFloat32, std::move(shape), values);
}

inline Tensor UploadInts(std::vector<int64_t> shape, const std::vector<int32_t>& values) {
  return Upload<int32_t>(DType::kInt32, std::move(shape), values);
}

// A float32 tensor whose every element is NaN.
inline Tensor PoisonedFloats(std::vector<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return UploadFloats(std::move(shape),
                      std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()));
}

inline std::vector<float> DownloadFloats(const Tensor& tensor) {
  return TestDevice().ToHost<float>(tensor);
}

inline std::vector<int32_t> DownloadInts(const Tensor& tensor) {
  return TestDevice().ToHost<int32_t>(tensor);
}

// Passes when |actual[i] - expected[i]| <= atol[i] + rtol * |expected[i]| for every i; NaN
// never passes. On failure says how many elements failed and which was worst.
inline ::testing::AssertionResult AllClose(const std::vector<float>& actual,
                                           const std::vector<double>& expected,
                                           const std::vector<double>& atol, double rtol) {
  if (actual.size() != expected.size()) {
    return ::testing::AssertionFailure()
           << "size " << actual.size() << " != expected size " << expected.size();
  }
  size_t failures = 0, worst = 0;
  double worst_excess = -1.0, max_error = 0.0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double error = std::abs(static_cast<double>(actual[i]) - expected[i]);
    const double bound = atol[i] + rtol * std::abs(expected[i]);
    if (!std::isnan(error)) max_error = std::max(max_error, error);
    if (!(error <= bound)) {  // NaN fails
      ++failures;
      const double excess =
          std::isnan(error) ? std::numeric_limits<double>::infinity() : error / bound;
      if (excess > worst_excess) worst_excess = excess, worst = i;
    }
  }
  if (failures == 0) return ::testing::AssertionSuccess() << "max error " << max_error;
  return ::testing::AssertionFailure()
         << failures << " of " << actual.size() << " elements off; worst at " << worst << ": got "
         << actual[worst] << ", expected " << expected[worst] << " (tolerance " << atol[worst]
         << " + " << rtol << " * |expected|)";
}

inline ::testing::AssertionResult AllClose(const std::vector<float>& actual,
                                           const std::vector<double>& expected, double atol,
                                           double rtol) {
  return AllClose(actual, expected, std::vector<double>(expected.size(), atol), rtol);
}

// Bitwise equality of two float vectors (NaN payloads included).
inline ::testing::AssertionResult BitwiseEqual(const std::vector<float>& actual,
                                               const std::vector<float>& expected) {
  if (actual.size() != expected.size()) {
    return ::testing::AssertionFailure()
           << "size " << actual.size() << " != expected size " << expected.size();
  }
  for (size_t i = 0; i < actual.size(); ++i) {
    if (std::memcmp(&actual[i], &expected[i], sizeof(float)) != 0) {
      return ::testing::AssertionFailure()
             << "element " << i << ": got " << actual[i] << ", expected " << expected[i];
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace pagedllm::kernels::test_util
