// float32 <-> bfloat16 <-> float16: known bit patterns, exhaustive round trips of all 65536
// 16-bit values, round-to-nearest-even against the neighbouring representable values, and
// the Cast op on tensors.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/half_conversion.h"
#include "tests/kernels/kernel_test_util.h"

namespace pagedllm::kernels {
namespace {

using test_util::BitwiseEqual;
using test_util::DownloadFloats;
using test_util::PoisonedFloats;
using test_util::RandomNormal;
using test_util::TestDevice;
using test_util::TestOps;
using test_util::Upload;
using test_util::UploadFloats;
using test_util::UploadInts;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

TEST(BFloat16, KnownValues) {
  EXPECT_EQ(FloatToBFloat16(1.0f), 0x3F80);
  EXPECT_EQ(FloatToBFloat16(-2.0f), 0xC000);
  EXPECT_EQ(FloatToBFloat16(3.140625f), 0x4049);
  EXPECT_EQ(BFloat16ToFloat(0x4049), 3.140625f);
  EXPECT_EQ(FloatToBFloat16(3.14159265f), 0x4049);  // rounds down to 3.140625
  EXPECT_EQ(FloatToBFloat16(0.0f), 0x0000);
  EXPECT_EQ(FloatToBFloat16(-0.0f), 0x8000);
  EXPECT_EQ(FloatToBFloat16(kInf), 0x7F80);
  EXPECT_EQ(FloatToBFloat16(-kInf), 0xFF80);
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(FloatToBFloat16(kNaN))));
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(FloatToBFloat16(-kNaN))));
  // A NaN whose payload sits only in the low 16 bits must not become infinity.
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(FloatToBFloat16(FloatFromBits(0x7F800001)))));
  // Ties go to even: 1 + 2^-8 lies halfway between 0x3F80 and 0x3F81.
  EXPECT_EQ(FloatToBFloat16(FloatFromBits(0x3F808000)), 0x3F80);
  EXPECT_EQ(FloatToBFloat16(FloatFromBits(0x3F818000)), 0x3F82);
  EXPECT_EQ(FloatToBFloat16(FloatFromBits(0x3F808001)), 0x3F81);
  EXPECT_EQ(FloatToBFloat16(FloatFromBits(0x3F807FFF)), 0x3F80);
  // The largest float rounds up to infinity, as PyTorch does.
  EXPECT_EQ(FloatToBFloat16(std::numeric_limits<float>::max()), 0x7F80);
  // bf16 -> f32 is the top 16 bits.
  EXPECT_EQ(FloatBits(BFloat16ToFloat(0x1234)), 0x12340000u);
}

TEST(BFloat16, ExhaustiveRoundTrip) {
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    const float f = BFloat16ToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(BFloat16ToFloat(FloatToBFloat16(f)))) << std::hex << h;
    } else {
      ASSERT_EQ(FloatToBFloat16(f), h) << std::hex << h;
    }
  }
}

TEST(Float16, KnownValues) {
  EXPECT_EQ(FloatToHalf(1.0f), 0x3C00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xC000);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7BFF);  // largest finite
  EXPECT_EQ(FloatToHalf(65519.99f), 0x7BFF);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7C00);  // halfway to 65536: ties to even = inf
  EXPECT_EQ(FloatToHalf(1e6f), 0x7C00);
  EXPECT_EQ(FloatToHalf(kInf), 0x7C00);
  EXPECT_EQ(FloatToHalf(-kInf), 0xFC00);
  EXPECT_EQ(FloatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(FloatToHalf(-std::ldexp(1.0f, -24)), 0x8001);
  EXPECT_EQ(FloatToHalf(std::ldexp(1023.0f, -24)), 0x03FF);  // largest subnormal
  EXPECT_EQ(FloatToHalf(std::ldexp(1023.5f, -24)), 0x0400);  // tie: rounds to even 1024
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -25)), 0x0000);     // tie between 0 and 1: 0
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0000001f, -25)), 0x0001);
  EXPECT_EQ(FloatToHalf(std::ldexp(3.0f, -25)), 0x0002);  // tie between 1 and 2: 2
  EXPECT_EQ(FloatToHalf(std::ldexp(5.0f, -25)), 0x0002);  // tie between 2 and 3: 2
  EXPECT_EQ(FloatToHalf(1e-10f), 0x0000);
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie: even
  EXPECT_EQ(FloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  const uint16_t nan = FloatToHalf(kNaN);
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x03FF, 0);
  EXPECT_NE(FloatToHalf(FloatFromBits(0x7F800001)) & 0x03FF, 0);  // low payload: still NaN

  EXPECT_EQ(HalfToFloat(0x3C00), 1.0f);
  EXPECT_EQ(HalfToFloat(0x3555), 0.333251953125f);
  EXPECT_EQ(HalfToFloat(0x7BFF), 65504.0f);
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(HalfToFloat(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_EQ(HalfToFloat(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(FloatBits(HalfToFloat(0x8000)), 0x80000000u);
  EXPECT_EQ(HalfToFloat(0x7C00), kInf);
  EXPECT_EQ(HalfToFloat(0xFC00), -kInf);
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7E00)));
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7C01)));
}

TEST(Float16, ExhaustiveRoundTrip) {
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(f)))) << std::hex << h;
    } else {
      ASSERT_EQ(FloatToHalf(f), h) << std::hex << h;
    }
  }
}

// For random floats over the whole half range, the result is the nearest representable value
// (ties to the even one): no neighbour is closer.
template <typename ToBits, typename FromBits>
void ExpectNearestEven(ToBits to_bits, FromBits from_bits, uint16_t max_finite, float lo_exp,
                       float hi_exp, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> exponent(lo_exp, hi_exp);
  std::uniform_real_distribution<float> mantissa(1.0f, 2.0f);
  for (int i = 0; i < 200000; ++i) {
    float f = std::ldexp(mantissa(rng), static_cast<int>(exponent(rng)));
    if (i % 2) f = -f;
    const uint16_t h = to_bits(f);
    const uint16_t magnitude = h & 0x7FFF;
    ASSERT_LE(magnitude, max_finite) << f;  // stays finite within range
    const double error = std::abs(static_cast<double>(from_bits(h)) - f);
    for (int step : {-1, 1}) {
      const int neighbour = magnitude + step;
      if (neighbour < 0 || neighbour > max_finite) continue;
      const uint16_t other = static_cast<uint16_t>((h & 0x8000) | neighbour);
      const double other_error = std::abs(static_cast<double>(from_bits(other)) - f);
      ASSERT_LE(error, other_error) << "f=" << f << " got " << std::hex << h;
      if (error == other_error) {
        ASSERT_EQ(h & 1, 0) << "tie not to even: f=" << f;
      }
    }
  }
}

TEST(Float16, RoundsToNearestEven) {
  // 2^-25 .. 2^15: zero, subnormals and normals of float16 (overflow is in KnownValues).
  ExpectNearestEven(FloatToHalf, HalfToFloat, 0x7BFF, -26.0f, 15.0f, 1);
}

TEST(BFloat16, RoundsToNearestEven) {
  ExpectNearestEven(FloatToBFloat16, BFloat16ToFloat, 0x7F7F, -130.0f, 127.0f, 2);
}

std::vector<uint16_t> Download16(const Tensor& t) { return TestDevice().ToHost<uint16_t>(t); }

TEST(Cast, TensorRoundTrips) {
  std::vector<float> values = RandomNormal(1000, 5, 100.0f);
  values[0] = 3.140625f;
  values[1] = kInf;
  values[2] = -0.0f;
  values[3] = std::ldexp(1.0f, -24);
  const Tensor f32 = UploadFloats({10, 100}, values);
  for (DType half : {DType::kBFloat16, DType::kFloat16}) {
    SCOPED_TRACE(DTypeName(half));
    const Tensor h = Upload<uint16_t>(half, {10, 100}, std::vector<uint16_t>(1000, 0xFFFF));
    TestOps().Cast(f32, h);
    const std::vector<uint16_t> bits = Download16(h);
    std::vector<float> expected(1000);
    for (int i = 0; i < 1000; ++i) {
      const uint16_t want =
          half == DType::kBFloat16 ? FloatToBFloat16(values[i]) : FloatToHalf(values[i]);
      ASSERT_EQ(bits[i], want) << i;
      expected[i] = half == DType::kBFloat16 ? BFloat16ToFloat(want) : HalfToFloat(want);
    }
    const Tensor back = PoisonedFloats({10, 100});
    TestOps().Cast(h, back);
    EXPECT_TRUE(BitwiseEqual(DownloadFloats(back), expected));
    EXPECT_EQ(DownloadFloats(back)[0], 3.140625f);  // exact in both formats
  }
}

TEST(Cast, BFloat16ToFloat16RoundsOnce) {
  std::vector<uint16_t> bf16(4096);
  for (int i = 0; i < 4096; ++i) bf16[i] = static_cast<uint16_t>(0x3000 + i * 3);
  const Tensor in = Upload<uint16_t>(DType::kBFloat16, {4096}, bf16);
  const Tensor out = Upload<uint16_t>(DType::kFloat16, {4096}, std::vector<uint16_t>(4096, 0));
  TestOps().Cast(in, out);
  const std::vector<uint16_t> got = Download16(out);
  for (int i = 0; i < 4096; ++i) {
    ASSERT_EQ(got[i], FloatToHalf(BFloat16ToFloat(bf16[i]))) << i;
  }
}

TEST(Cast, SameDtypeCopies) {
  const Tensor out = UploadInts({3}, {0, 0, 0});
  TestOps().Cast(UploadInts({3}, {7, -8, 9}), out);
  EXPECT_EQ(test_util::DownloadInts(out), (std::vector<int32_t>{7, -8, 9}));
  const std::vector<float> values = RandomNormal(64, 8);
  const Tensor f = PoisonedFloats({8, 8});
  TestOps().Cast(UploadFloats({8, 8}, values), f);
  EXPECT_TRUE(BitwiseEqual(DownloadFloats(f), values));
}

TEST(CastDeathTest, RejectsIntConversionsAndShapes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(TestOps().Cast(UploadInts({2}, {1, 2}), PoisonedFloats({2})),
               "Cast: only float dtypes convert \\(in \\[2\\] int32, out \\[2\\] float32\\)");
  EXPECT_DEATH(TestOps().Cast(PoisonedFloats({2, 3}), PoisonedFloats({3, 2})),
               "Cast: shapes differ");
}

}  // namespace
}  // namespace pagedllm::kernels
