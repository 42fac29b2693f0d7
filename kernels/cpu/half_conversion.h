// Scalar conversions between float32 and the 16-bit float formats, bit-exact with PyTorch:
// bfloat16 is the top half of a float32 (round-to-nearest-even on the way down); float16 is
// IEEE 754 binary16 with subnormals, infinities and NaNs. All round to nearest, ties to even;
// NaNs stay (quiet) NaNs with their sign. Header-only so tests and other backends can share it.
#pragma once

#include <cstdint>
#include <cstring>

namespace pagedllm::kernels {

inline uint32_t FloatBits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  return bits;
}

inline float FloatFromBits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

inline float BFloat16ToFloat(uint16_t h) { return FloatFromBits(static_cast<uint32_t>(h) << 16); }

inline uint16_t FloatToBFloat16(float f) {
  const uint32_t bits = FloatBits(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // NaN: set the quiet bit
  }
  // Round to nearest even at bit 16; a carry into the exponent is correct (up to infinity).
  const uint32_t rounding_bias = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding_bias) >> 16);
}

inline float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f) return FloatFromBits(sign | 0x7f800000u | (mantissa << 13));  // inf/nan
  if (exponent != 0) return FloatFromBits(sign | ((exponent + 112) << 23) | (mantissa << 13));
  // Zero or subnormal: mantissa * 2^-24, exact in float32.
  const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
  return FloatFromBits(sign | FloatBits(magnitude));
}

inline uint16_t FloatToHalf(float f) {
  const uint32_t bits = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) {  // NaN: quiet, keep the top payload bits
    return static_cast<uint16_t>(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));
  }
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520 -> inf
  if (abs >= 0x38800000u) {  // normal in half (>= 2^-14): round at bit 13, rebias 127 -> 15
    abs += 0xfffu + ((abs >> 13) & 1u);
    return static_cast<uint16_t>(sign | ((abs - 0x38000000u) >> 13));
  }
  const uint32_t exponent = abs >> 23;
  if (exponent < 102) return sign;  // below 2^-25 (or a float subnormal): rounds to zero
  // Subnormal half: the result counts units of 2^-24; round the 24-bit significand.
  const uint32_t significand = (abs & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126 - exponent;  // 14..24
  uint32_t result = significand >> shift;
  const uint32_t remainder = significand & ((1u << shift) - 1);
  const uint32_t halfway = 1u << (shift - 1);
  if (remainder > halfway || (remainder == halfway && (result & 1u))) ++result;
  return static_cast<uint16_t>(sign | result);  // result may be 0x400, the smallest normal
}

}  // namespace pagedllm::kernels
