// Helpers for the CUDA kernel tests: the GPU device shared by one test binary (beside the CPU
// device of kernel_test_util.h, the reference), tensors of any float dtype filled from float
// values, poisoned with NaN, and read back as float; unit roundoffs per dtype for tolerances.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "common/check.h"
#include "gtest/gtest.h"
#include "kernels/cpu/half_conversion.h"
#include "kernels/device.h"
#include "kernels/ops.h"
#include "kernels/tensor.h"
#include "tests/kernels/kernel_test_util.h"

namespace pagedllm::kernels::cuda_test {

// The CUDA device on GPU 0 shared by the tests of one binary.
inline Device& Gpu() {
  static Device* device = [] {
    absl::StatusOr<std::unique_ptr<Device>> made = MakeCudaDevice(0);
    PAGEDLLM_CHECK_OK(made.status());
    return made->release();
  }();
  return *device;
}
inline Ops& GpuOps() { return Gpu().ops(); }
inline Device& Cpu() { return test_util::TestDevice(); }
inline Ops& CpuOps() { return test_util::TestOps(); }

constexpr DType kFloatTypes[] = {DType::kFloat32, DType::kBFloat16, DType::kFloat16};

// Unit roundoff u of a dtype: round to nearest makes |round(x) - x| <= u * |x| for normal x.
// 2^-24 for float32, 2^-8 for bfloat16 (8 significant bits), 2^-11 for float16 (11 bits).
inline double UnitRoundoff(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return std::ldexp(1.0, -24);
    case DType::kBFloat16:
      return std::ldexp(1.0, -8);
    case DType::kFloat16:
      return std::ldexp(1.0, -11);
    case DType::kInt32:
      break;
  }
  return 0.0;
}

// x rounded to `dtype` (nearest even, bit-exact with PyTorch) and back to float.
inline float RoundTo(DType dtype, float x) {
  switch (dtype) {
    case DType::kBFloat16:
      return BFloat16ToFloat(FloatToBFloat16(x));
    case DType::kFloat16:
      return HalfToFloat(FloatToHalf(x));
    default:
      return x;
  }
}

inline std::vector<float> RoundAll(DType dtype, std::vector<float> values) {
  for (float& v : values) v = RoundTo(dtype, v);
  return values;
}

// The bytes of `values` encoded as `dtype` (float32, bfloat16 or float16).
inline std::vector<uint8_t> Encode(DType dtype, const std::vector<float>& values) {
  std::vector<uint8_t> bytes(values.size() * DTypeSize(dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::kFloat32) {
      std::memcpy(&bytes[4 * i], &values[i], 4);
    } else {
      const uint16_t h =
          dtype == DType::kBFloat16 ? FloatToBFloat16(values[i]) : FloatToHalf(values[i]);
      std::memcpy(&bytes[2 * i], &h, 2);
    }
  }
  return bytes;
}

inline std::vector<float> Decode(DType dtype, const std::vector<uint8_t>& bytes) {
  const size_t n = bytes.size() / DTypeSize(dtype);
  std::vector<float> values(n);
  for (size_t i = 0; i < n; ++i) {
    if (dtype == DType::kFloat32) {
      std::memcpy(&values[i], &bytes[4 * i], 4);
    } else {
      uint16_t h;
      std::memcpy(&h, &bytes[2 * i], 2);
      values[i] = dtype == DType::kBFloat16 ? BFloat16ToFloat(h) : HalfToFloat(h);
    }
  }
  return values;
}

inline int64_t NumElements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// A tensor on `device` holding raw bytes.
inline Tensor UploadBytes(Device& device, DType dtype, std::vector<int64_t> shape,
                          const std::vector<uint8_t>& bytes) {
  absl::StatusOr<Tensor> tensor = device.FromHost<uint8_t>(dtype, std::move(shape), bytes);
  PAGEDLLM_CHECK_OK(tensor.status());
  return *std::move(tensor);
}

inline std::vector<uint8_t> DownloadBytes(Device& device, const Tensor& tensor) {
  return device.ToHost<uint8_t>(tensor);
}

// A GPU tensor of `dtype` holding `values` (rounded to the dtype).
inline Tensor GpuTensor(DType dtype, std::vector<int64_t> shape, const std::vector<float>& values) {
  return UploadBytes(Gpu(), dtype, std::move(shape), Encode(dtype, values));
}

inline Tensor GpuInts(std::vector<int64_t> shape, const std::vector<int32_t>& values) {
  absl::StatusOr<Tensor> tensor = Gpu().FromHost<int32_t>(DType::kInt32, std::move(shape), values);
  PAGEDLLM_CHECK_OK(tensor.status());
  return *std::move(tensor);
}

// A GPU tensor of `dtype` whose every element is NaN, so an element an op fails to write fails
// the comparison.
inline Tensor GpuPoisoned(DType dtype, std::vector<int64_t> shape) {
  const int64_t n = NumElements(shape);
  return GpuTensor(dtype, std::move(shape),
                   std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()));
}

inline std::vector<float> GpuDownload(const Tensor& tensor) {
  return Decode(tensor.dtype(), DownloadBytes(Gpu(), tensor));
}

// Passes when at most `max_fraction` of the elements differ bitwise (as floats; NaN never
// matches): shows that a 16-bit op rounds in the same order as the emulated reference, where a
// different order would leave many elements one unit in the last place off.
inline ::testing::AssertionResult MostlyIdentical(const std::vector<float>& actual,
                                                  const std::vector<float>& expected,
                                                  double max_fraction) {
  if (actual.size() != expected.size()) {
    return ::testing::AssertionFailure() << "size " << actual.size() << " != " << expected.size();
  }
  size_t differing = 0;
  for (size_t i = 0; i < actual.size(); ++i) differing += !(actual[i] == expected[i]);
  const double fraction = actual.empty() ? 0.0 : static_cast<double>(differing) / actual.size();
  if (fraction <= max_fraction) {
    return ::testing::AssertionSuccess() << differing << " of " << actual.size() << " differ";
  }
  return ::testing::AssertionFailure()
         << differing << " of " << actual.size()
         << " elements differ from the emulated rounding (allowed " << max_fraction * 100 << "%)";
}

inline std::vector<double> ToDouble(const std::vector<float>& values) {
  return std::vector<double>(values.begin(), values.end());
}

}  // namespace pagedllm::kernels::cuda_test
