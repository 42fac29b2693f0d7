// RopeQkv on the GPU against the CPU backend, for float32, bfloat16 and float16, over head
// layouts (MHA, GQA, MQA), head sizes and positions up to 2^17.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/cuda/cuda_test_util.h"

namespace pagedllm::kernels {
namespace {

using cuda_test::CpuOps;
using cuda_test::GpuDownload;
using cuda_test::GpuInts;
using cuda_test::GpuOps;
using cuda_test::GpuPoisoned;
using cuda_test::GpuTensor;
using cuda_test::MostlyIdentical;
using cuda_test::RoundAll;
using cuda_test::RoundTo;
using cuda_test::ToDouble;
using cuda_test::UnitRoundoff;
using test_util::AllClose;
using test_util::DownloadFloats;
using test_util::PoisonedFloats;
using test_util::RandomNormal;
using test_util::UploadFloats;
using test_util::UploadInts;

// inv_freq as transformers computes it, in float32.
std::vector<float> InvFreq(int head_dim, double base) {
  std::vector<float> inv_freq(head_dim / 2);
  for (int i = 0; i < head_dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv_freq[i] = static_cast<float>(1.0 / std::pow(base, static_cast<double>(exponent)));
  }
  return inv_freq;
}

struct Layout {
  int num_tokens, num_heads, num_kv_heads, head_dim;
};

void CheckRope(DType dtype, const Layout& l, double base, uint32_t seed) {
  SCOPED_TRACE(::testing::Message()
               << DTypeName(dtype) << " tokens=" << l.num_tokens << " heads=" << l.num_heads << "/"
               << l.num_kv_heads << " head_dim=" << l.head_dim << " base=" << base);
  std::mt19937 rng(seed);
  std::vector<int32_t> positions = {0, 1, 4096, 131071};
  std::uniform_int_distribution<int32_t> position(0, 8191);
  while (static_cast<int>(positions.size()) < l.num_tokens) positions.push_back(position(rng));
  positions.resize(l.num_tokens);
  const int64_t n = l.num_tokens, half = l.head_dim / 2;
  const int64_t width = static_cast<int64_t>(l.num_heads + 2 * l.num_kv_heads) * l.head_dim;
  const std::vector<float> qkv = RoundAll(dtype, RandomNormal(n * width, rng()));
  const std::vector<float> inv_freq = InvFreq(l.head_dim, base);

  RopeQkvParams gpu;
  gpu.qkv = GpuTensor(dtype, {n, width}, qkv);
  gpu.positions = GpuInts({n}, positions);
  gpu.inv_freq = GpuTensor(DType::kFloat32, {half}, inv_freq);
  gpu.query = GpuPoisoned(dtype, {n, l.num_heads, l.head_dim});
  gpu.key = GpuPoisoned(dtype, {n, l.num_kv_heads, l.head_dim});
  gpu.value = GpuPoisoned(dtype, {n, l.num_kv_heads, l.head_dim});
  GpuOps().RopeQkv(gpu);

  RopeQkvParams cpu;
  cpu.qkv = UploadFloats({n, width}, qkv);
  cpu.positions = UploadInts({n}, positions);
  cpu.inv_freq = UploadFloats({half}, inv_freq);
  cpu.query = PoisonedFloats({n, l.num_heads, l.head_dim});
  cpu.key = PoisonedFloats({n, l.num_kv_heads, l.head_dim});
  cpu.value = PoisonedFloats({n, l.num_kv_heads, l.head_dim});
  CpuOps().RopeQkv(cpu);

  // Per output element, the inputs a = x[i], b = x[i + half] of its pair.
  const auto pair_magnitudes = [&](int heads, int64_t offset) {
    std::vector<double> magnitude(n * heads * l.head_dim);
    for (int64_t t = 0; t < n; ++t) {
      for (int h = 0; h < heads; ++h) {
        const float* x = &qkv[t * width + offset + static_cast<int64_t>(h) * l.head_dim];
        for (int64_t i = 0; i < half; ++i) {
          const double m = std::abs(x[i]) + std::abs(x[i + half]);
          magnitude[(t * heads + h) * l.head_dim + i] = m;
          magnitude[(t * heads + h) * l.head_dim + i + half] = m;
        }
      }
    }
    return magnitude;
  };
  // float32: cos/sin from CUDA's sincosf vs glibc (<= 2 ulp; angles up to 1.3e5 rad are reduced
  // exactly by both) and two products: a few ulps of |a| + |b|, the scale of the terms
  // (the result itself may cancel to near zero): atol 1e-5 * (|a| + |b|), rtol 1e-5.
  // 16 bits: cos and sin rounded to dtype (u each), both products rounded (u each), the sum
  // rounded (u * |result| <= u * (|a| + |b|)): atol 3u * (|a| + |b|) against the CPU's float32,
  // plus 0.1u for the second-order terms.
  const double scale = dtype == DType::kFloat32 ? 1e-5 : 3.1 * UnitRoundoff(dtype);
  const double rtol = dtype == DType::kFloat32 ? 1e-5 : 0.0;
  const int64_t q_width = static_cast<int64_t>(l.num_heads) * l.head_dim;
  std::vector<double> q_atol = pair_magnitudes(l.num_heads, 0);
  std::vector<double> k_atol = pair_magnitudes(l.num_kv_heads, q_width);
  for (double& a : q_atol) a = a * scale + 1e-30;
  for (double& a : k_atol) a = a * scale + 1e-30;
  const std::vector<float> query = GpuDownload(gpu.query), key = GpuDownload(gpu.key);
  EXPECT_TRUE(AllClose(query, ToDouble(DownloadFloats(cpu.query)), q_atol, rtol));
  EXPECT_TRUE(AllClose(key, ToDouble(DownloadFloats(cpu.key)), k_atol, rtol));
  EXPECT_EQ(GpuDownload(gpu.value), DownloadFloats(cpu.value));  // a copy: exact

  if (dtype != DType::kFloat32) {
    // Hugging Face's rounding order, emulated: R(R(a * R(cos)) - R(b * R(sin))), cos and sin of
    // the float32 angle. CUDA's sincosf may differ from glibc's by an ulp, which changes R(cos)
    // only next to a rounding boundary: at most 2% of the outputs may differ.
    std::vector<float> expected(query.size());
    for (int64_t t = 0; t < n; ++t) {
      for (int h = 0; h < l.num_heads; ++h) {
        const float* x = &qkv[t * width + static_cast<int64_t>(h) * l.head_dim];
        float* out = &expected[(t * l.num_heads + h) * l.head_dim];
        for (int64_t i = 0; i < half; ++i) {
          const float angle = static_cast<float>(positions[t]) * inv_freq[i];
          const float c = RoundTo(dtype, std::cos(angle)), s = RoundTo(dtype, std::sin(angle));
          out[i] = RoundTo(dtype, RoundTo(dtype, x[i] * c) - RoundTo(dtype, x[i + half] * s));
          out[i + half] =
              RoundTo(dtype, RoundTo(dtype, x[i + half] * c) + RoundTo(dtype, x[i] * s));
        }
      }
    }
    EXPECT_TRUE(MostlyIdentical(query, expected, 0.02));
  }
}

TEST(CudaRopeQkv, SweepMatchesCpu) {
  const Layout layouts[] = {{1, 1, 1, 2},   {7, 4, 2, 64}, {33, 32, 8, 128},
                            {5, 8, 1, 256}, {3, 5, 5, 80}, {300, 4, 1, 128}};
  for (DType dtype : cuda_test::kFloatTypes) {
    for (const Layout& layout : layouts) {
      for (double base : {10000.0, 500000.0}) {
        CheckRope(dtype, layout, base,
                  static_cast<uint32_t>(layout.head_dim * 10 + layout.num_tokens));
      }
    }
  }
}

TEST(CudaRopeQkvDeathTest, NamesTheShapes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  RopeQkvParams p;
  p.qkv = GpuPoisoned(DType::kBFloat16, {2, 6 * 64});
  p.positions = GpuInts({2}, {0, 1});
  p.inv_freq = GpuPoisoned(DType::kFloat32, {32});
  p.query = GpuPoisoned(DType::kBFloat16, {2, 4, 64});
  p.key = GpuPoisoned(DType::kBFloat16, {2, 2, 64});
  p.value = GpuPoisoned(DType::kBFloat16, {2, 2, 64});
  EXPECT_DEATH(GpuOps().RopeQkv(p),
               "RopeQkv: want qkv: \\[num_tokens, \\(num_heads \\+ 2 \\* "
               "num_kv_heads\\) \\* head_dim\\] = \\[2, 512\\]");
}

}  // namespace
}  // namespace pagedllm::kernels
