// The arithmetic of Ops::SampleRows that the CPU and CUDA backends share bit for bit, so a seeded
// draw picks the same token on both: a counter-based RNG (Philox4x32-10), exp and log written
// with IEEE adds and multiplies only (no libm, whose last bit varies; no fused multiply-adds),
// the order key of a logit, and the fixed-point weights whose integer sums decide top-p.
//
// How SampleRows draws (temperature T > 0), for a row of logits l with maximum m:
//   s_i = (l_i - m) / T                      scaled logit, <= 0 (float, correctly rounded)
//   w_i = ExpNonPositive(s_i)                 unnormalised probability in [0, 1]; NaN -> 0
//   kept: a prefix of the order (l descending, id ascending) cut by top-k, top-p (on the
//         fixed-point masses of w), min-p (w_i >= min_p) and w_i > 0
//   token = argmax over kept i of  s_i + Gumbel(seed, draw, i),  ties to the lower id
// Gumbel-max picks i with probability w_i / sum(kept w): an exact draw from the renormalised kept
// distribution with no sort and no cumulative sum. The noise of token i in draw d of a sequence
// is a pure function of (seed, d, i), so CPU and GPU, any batch and any shard layout agree.
// Usable from host code and, under nvcc, from device code.
#pragma once

#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define PAGEDLLM_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define PAGEDLLM_HOST_DEVICE inline
#endif

namespace pagedllm::kernels::sampling {

// Float arithmetic that no compiler fuses into a multiply-add (the CUDA intrinsics are never
// contracted; x86-64 host code has no FMA unless -mfma, which the build never sets).
PAGEDLLM_HOST_DEVICE float Mul(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
PAGEDLLM_HOST_DEVICE float Add(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
PAGEDLLM_HOST_DEVICE float Sub(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
PAGEDLLM_HOST_DEVICE float Div(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

PAGEDLLM_HOST_DEVICE uint32_t FloatBits(float x) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(x);
#else
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return bits;
#endif
}
PAGEDLLM_HOST_DEVICE float BitsToFloat(uint32_t bits) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(bits);
#else
  float x;
  std::memcpy(&x, &bits, sizeof(x));
  return x;
#endif
}

PAGEDLLM_HOST_DEVICE bool IsNan(float x) { return x != x; }

// Philox4x32-10 (Salmon et al., SC'11; the Random123 reference): 4 random words from a 128-bit
// counter and a 64-bit key.
struct Philox4 {
  uint32_t v[4];
};
PAGEDLLM_HOST_DEVICE Philox4 Philox4x32(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                        uint32_t k0, uint32_t k1) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kM0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(kM1) * c2;
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += kW0;
    k1 += kW1;
  }
  return {{c0, c1, c2, c3}};
}

// exp(x) for x <= 0 (x > 0 is taken as 0; NaN and x < ln(FLT_MIN) give 0): Cephes' expf,
// x = n ln2 + r, a degree-7 polynomial in r, times 2^n. Relative error below 3e-7.
PAGEDLLM_HOST_DEVICE float ExpNonPositive(float x) {
  constexpr float kMinArgument = -87.33654f;  // ln(FLT_MIN)
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;  // exact in 10 bits, so n * kLn2Hi is exact
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kRoundingBias = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  if (!(x >= kMinArgument)) return 0.0f;        // also NaN
  if (x > 0.0f) x = 0.0f;
  float n = Sub(Add(Mul(x, kLog2e), kRoundingBias), kRoundingBias);  // integer in [-126, 0]
  float r = Sub(Sub(x, Mul(n, kLn2Hi)), Mul(n, kLn2Lo));
  float p = 1.9875691500e-4f;
  p = Add(Mul(p, r), 1.3981999507e-3f);
  p = Add(Mul(p, r), 8.3334519073e-3f);
  p = Add(Mul(p, r), 4.1665795894e-2f);
  p = Add(Mul(p, r), 1.6666665459e-1f);
  p = Add(Mul(p, r), 5.0000001201e-1f);
  p = Add(Add(Mul(p, Mul(r, r)), r), 1.0f);
  const int32_t exponent = static_cast<int32_t>(n) + 127;  // 2^n as a float, n >= -126
  return Mul(p, BitsToFloat(static_cast<uint32_t>(exponent) << 23));
}

// ln(x) for a finite normal x > 0: Cephes' logf (x = 2^e * f, f in [sqrt(1/2), sqrt(2)), a
// degree-8 polynomial in f - 1). Error about 1 ulp.
PAGEDLLM_HOST_DEVICE float LogPositive(float x) {
  const uint32_t bits = FloatBits(x);
  int32_t e = static_cast<int32_t>((bits >> 23) & 0xFFu) - 126;
  float f = BitsToFloat((bits & 0x007FFFFFu) | 0x3F000000u);  // in [0.5, 1)
  if (f < 0.707106781186547524f) {
    e -= 1;
    f = Sub(Add(f, f), 1.0f);
  } else {
    f = Sub(f, 1.0f);
  }
  const float z = Mul(f, f);
  float y = 7.0376836292e-2f;
  y = Add(Mul(y, f), -1.1514610310e-1f);
  y = Add(Mul(y, f), 1.1676998740e-1f);
  y = Add(Mul(y, f), -1.2420140846e-1f);
  y = Add(Mul(y, f), 1.4249322787e-1f);
  y = Add(Mul(y, f), -1.6668057665e-1f);
  y = Add(Mul(y, f), 2.0000714765e-1f);
  y = Add(Mul(y, f), -2.4999993993e-1f);
  y = Add(Mul(y, f), 3.3333331174e-1f);
  y = Mul(Mul(y, f), z);
  const float ef = static_cast<float>(e);
  y = Add(y, Mul(ef, -2.12194440e-4f));
  y = Sub(y, Mul(z, 0.5f));
  return Add(Add(f, y), Mul(ef, 0.693359375f));
}

// Gumbel(0, 1) noise from one random word: u = (2 * (bits >> 9) + 1) / 2^24, exact in float and
// inside (0, 1); -ln(-ln(u)) lies in (-2.82, 16.64).
PAGEDLLM_HOST_DEVICE float GumbelFromBits(uint32_t bits) {
  const float u = Mul(static_cast<float>(((bits >> 9) << 1) | 1u), 5.9604644775390625e-8f);
  return -LogPositive(-LogPositive(u));
}

// The noise of token `id` in draw `draw` of a sequence with seed `seed`: word id % 4 of the
// Philox block at counter (id / 4, 0, draw), key seed. Tokens 4g..4g+3 share one block.
PAGEDLLM_HOST_DEVICE Philox4 NoiseBlock(uint32_t group, uint32_t seed_lo, uint32_t seed_hi,
                                        uint32_t draw_lo, uint32_t draw_hi) {
  return Philox4x32(group, 0u, draw_lo, draw_hi, seed_lo, seed_hi);
}

// A token whose scaled logit s is below this never wins the Gumbel argmax: its score is below
// -20 + 16.64, and the most likely token (s = 0, always kept) scores above -2.82. Its noise need
// not be computed.
inline constexpr float kNeverWinsBelow = -20.0f;

// The order of the filters, as a 32-bit key: a larger key is a larger logit (+0 and -0 equal).
// Not for NaN.
PAGEDLLM_HOST_DEVICE uint32_t OrderKey(float logit) {
  const uint32_t bits = FloatBits(logit == 0.0f ? 0.0f : logit);
  return (bits & 0x80000000u) != 0 ? ~bits : (bits | 0x80000000u);
}

// Weights in [0, 1] as fixed point with 40 fraction bits (truncated): top-p sums these integers,
// so every backend and every summation order gets the same masses. The truncation costs at most
// 2^-40 per token, below 2e-7 of the mass over a vocabulary of 2^17 (the top token weighs 1).
inline constexpr float kMassScale = 1099511627776.0f;         // 2^40
inline constexpr int64_t kMaxSampleVocab = int64_t{1} << 23;  // so sums stay below 2^63
PAGEDLLM_HOST_DEVICE uint64_t FixedWeight(float weight) {
  return static_cast<uint64_t>(Mul(weight, kMassScale));
}

// The mass a top-p nucleus must reach, out of `total` (fixed point): (top_p - 1e-6) * total, so
// a mass within 1e-6 of top_p counts as reaching it.
PAGEDLLM_HOST_DEVICE double TopPThreshold(float top_p, uint64_t total) {
  return (static_cast<double>(top_p) - 1e-6) * static_cast<double>(total);
}

// Where a kept prefix of the order ends: its last element's key and id. Element (key, id) is in
// the prefix when key > last_key, or key == last_key and id <= last_id.
struct PrefixEnd {
  uint32_t key;
  int32_t id;
};
PAGEDLLM_HOST_DEVICE bool InPrefix(uint32_t key, int32_t id, PrefixEnd end) {
  return key > end.key || (key == end.key && id <= end.id);
}
// The shorter of two prefixes.
PAGEDLLM_HOST_DEVICE PrefixEnd ShorterPrefix(PrefixEnd a, PrefixEnd b) {
  return InPrefix(a.key, a.id, b) ? a : b;
}

}  // namespace pagedllm::kernels::sampling
