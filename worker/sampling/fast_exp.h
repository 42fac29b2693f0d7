// FastExpNonPositive: exp(x) for x <= 0 in plain float arithmetic, so the compiler can
// vectorise loops over it (a call to std::exp blocks that) and every platform computes the same
// bits (only IEEE add/mul and exact power-of-two scaling; no libm, whose last bit varies).
//
// Cephes' expf: x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in two for an exact n ln2), e^r by
// a degree-7 polynomial, times 2^n. Relative error below 3e-7 (about 2 ulp) on [-87.3, 0].
// Results under FLT_MIN (x < -87.34) are 0, and so is NaN; x > 0 is treated as 0 (result 1).
// Loops over it vectorise when compiled with -fno-trapping-math (which changes no result; GCC
// otherwise keeps the range selects as branches); pagedllm_sampling is.
#pragma once

#include <cstdint>
#include <cstring>

namespace pagedllm::worker {

inline float FastExpNonPositive(float x) {
  constexpr float kMinArgument = -87.33654f;  // ln(FLT_MIN)
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;  // exact in 10 bits, so n * kLn2Hi is exact
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kRoundingBias = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const bool underflow = !(x >= kMinArgument);  // also true for NaN
  float clamped = underflow ? kMinArgument : x;
  clamped = clamped > 0.0f ? 0.0f : clamped;
  // Each step is its own statement so no compiler fuses a multiply-add (same bits everywhere).
  float n = clamped * kLog2e;
  n = n + kRoundingBias;
  n = n - kRoundingBias;  // round-to-nearest integer in [-126, 0]
  float high = n * kLn2Hi;
  float r = clamped - high;
  float low = n * kLn2Lo;
  r = r - low;
  float p = 1.9875691500e-4f;
  p = p * r;
  p = p + 1.3981999507e-3f;
  p = p * r;
  p = p + 8.3334519073e-3f;
  p = p * r;
  p = p + 4.1665795894e-2f;
  p = p * r;
  p = p + 1.6666665459e-1f;
  p = p * r;
  p = p + 5.0000001201e-1f;
  const float r2 = r * r;
  p = p * r2;
  p = p + r;
  p = p + 1.0f;
  const int32_t exponent_bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n, n >= -126
  float scale;
  std::memcpy(&scale, &exponent_bits, sizeof(scale));
  const float result = p * scale;
  return underflow ? 0.0f : result;
}

}  // namespace pagedllm::worker
