// RopeQkv against a float64 reference of Hugging Face Llama's rotary embedding.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace pagedllm::kernels {
namespace {

using test_util::AllClose;
using test_util::BitwiseEqual;
using test_util::DownloadFloats;
using test_util::PoisonedFloats;
using test_util::RandomNormal;
using test_util::TestOps;
using test_util::UploadFloats;
using test_util::UploadInts;

// inv_freq as transformers computes it, in float32:
//   1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
std::vector<float> InvFreq(int head_dim, double base) {
  std::vector<float> inv_freq(head_dim / 2);
  for (int i = 0; i < head_dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv_freq[i] = static_cast<float>(1.0 / std::pow(base, static_cast<double>(exponent)));
  }
  return inv_freq;
}

// q_embed = q * cos + rotate_half(q) * sin, rotate_half(x) = [-x[half:], x[:half]], with the
// angle rounded to float32 as transformers does (float(position) * inv_freq in float32) and
// everything after it in float64.
void ReferenceRotate(const float* x, const std::vector<float>& inv_freq, int32_t position,
                     int head_dim, double* out) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    const float angle = static_cast<float>(position) * inv_freq[i];
    const double c = std::cos(static_cast<double>(angle));
    const double s = std::sin(static_cast<double>(angle));
    out[i] = x[i] * c - static_cast<double>(x[i + half]) * s;
    out[i + half] = x[i + half] * c + static_cast<double>(x[i]) * s;
  }
}

struct RopeOutputs {
  std::vector<float> query, key, value;
};

RopeOutputs RunRope(const std::vector<float>& qkv, const std::vector<int32_t>& positions,
                    const std::vector<float>& inv_freq, int num_heads, int num_kv_heads,
                    int head_dim) {
  const int64_t n = static_cast<int64_t>(positions.size());
  RopeQkvParams p;
  p.qkv = UploadFloats({n, (num_heads + 2 * num_kv_heads) * head_dim}, qkv);
  p.positions = UploadInts({n}, positions);
  p.inv_freq = UploadFloats({head_dim / 2}, inv_freq);
  p.query = PoisonedFloats({n, num_heads, head_dim});
  p.key = PoisonedFloats({n, num_kv_heads, head_dim});
  p.value = PoisonedFloats({n, num_kv_heads, head_dim});
  TestOps().RopeQkv(p);
  return {DownloadFloats(p.query), DownloadFloats(p.key), DownloadFloats(p.value)};
}

TEST(RopeQkv, SweepMatchesFloat64Reference) {
  const int num_heads = 8;
  for (int head_dim : {32, 64, 128}) {
    for (int num_kv_heads : {8, 2, 1}) {
      for (double base : {10000.0, 500000.0}) {
        SCOPED_TRACE(::testing::Message() << "head_dim=" << head_dim << " heads=" << num_heads
                                          << "/" << num_kv_heads << " base=" << base);
        std::mt19937 rng(head_dim * 10 + num_kv_heads);
        std::vector<int32_t> positions = {0, 1, 2, 17, 4095, 4096};
        std::uniform_int_distribution<int32_t> position(0, 4096);
        while (positions.size() < 40) positions.push_back(position(rng));
        const int64_t n = static_cast<int64_t>(positions.size());
        const int width = (num_heads + 2 * num_kv_heads) * head_dim;
        const std::vector<float> qkv = RandomNormal(n * width, rng());
        const std::vector<float> inv_freq = InvFreq(head_dim, base);
        const RopeOutputs got =
            RunRope(qkv, positions, inv_freq, num_heads, num_kv_heads, head_dim);

        std::vector<double> query(n * num_heads * head_dim), key(n * num_kv_heads * head_dim);
        std::vector<float> value(n * num_kv_heads * head_dim);
        for (int64_t t = 0; t < n; ++t) {
          const float* row = &qkv[t * width];
          for (int h = 0; h < num_heads; ++h) {
            ReferenceRotate(row + h * head_dim, inv_freq, positions[t], head_dim,
                            &query[(t * num_heads + h) * head_dim]);
          }
          for (int h = 0; h < num_kv_heads; ++h) {
            ReferenceRotate(row + (num_heads + h) * head_dim, inv_freq, positions[t], head_dim,
                            &key[(t * num_kv_heads + h) * head_dim]);
          }
          for (int e = 0; e < num_kv_heads * head_dim; ++e) {
            value[t * num_kv_heads * head_dim + e] = row[(num_heads + num_kv_heads) * head_dim + e];
          }
        }
        // Two float32 products and a sum of values ~N(0, 1), with float32 cos/sin of the same
        // float32 angle (within an ulp of float64's): errors of a few 1e-7.
        EXPECT_TRUE(AllClose(got.query, query, /*atol=*/2e-6, /*rtol=*/1e-5));
        EXPECT_TRUE(AllClose(got.key, key, /*atol=*/2e-6, /*rtol=*/1e-5));
        EXPECT_TRUE(BitwiseEqual(got.value, value));
      }
    }
  }
}

// Position 0 is the identity (cos 0 = 1, sin 0 = 0), bit for bit.
TEST(RopeQkv, PositionZeroIsIdentity) {
  const int num_heads = 4, num_kv_heads = 2, head_dim = 64;
  const int width = (num_heads + 2 * num_kv_heads) * head_dim;
  const std::vector<float> qkv = RandomNormal(3 * width, 9);
  const RopeOutputs got =
      RunRope(qkv, {0, 0, 0}, InvFreq(head_dim, 10000.0), num_heads, num_kv_heads, head_dim);
  std::vector<float> query, key;
  for (int t = 0; t < 3; ++t) {
    query.insert(query.end(), qkv.begin() + t * width,
                 qkv.begin() + t * width + num_heads * head_dim);
    key.insert(key.end(), qkv.begin() + t * width + num_heads * head_dim,
               qkv.begin() + t * width + (num_heads + num_kv_heads) * head_dim);
  }
  EXPECT_TRUE(BitwiseEqual(got.query, query));
  EXPECT_TRUE(BitwiseEqual(got.key, key));
}

// The pairing is rotate_half (i with i + head_dim/2), not interleaved (2i with 2i + 1):
// a unit vector e_0 rotated by angle a becomes cos(a) e_0 + sin(a) e_{half}.
TEST(RopeQkv, PairsDimensionIWithIPlusHalf) {
  const int head_dim = 8;
  std::vector<float> qkv(3 * head_dim, 0.0f);
  qkv[0] = 1.0f;  // query e_0
  const std::vector<float> inv_freq = {1.0f, 0.5f, 0.25f, 0.125f};
  const RopeOutputs got = RunRope(qkv, {1}, inv_freq, 1, 1, head_dim);
  EXPECT_FLOAT_EQ(got.query[0], std::cos(1.0f));
  EXPECT_FLOAT_EQ(got.query[4], std::sin(1.0f));
  for (int i : {1, 2, 3, 5, 6, 7}) EXPECT_EQ(got.query[i], 0.0f) << i;
}

TEST(RopeQkvDeathTest, NamesTheShapes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  RopeQkvParams p;
  p.qkv = PoisonedFloats({2, 10 * 32});  // 8 + 2·2 heads would need 12 * 32
  p.positions = UploadInts({2}, {0, 1});
  p.inv_freq = PoisonedFloats({16});
  p.query = PoisonedFloats({2, 8, 32});
  p.key = PoisonedFloats({2, 2, 32});
  p.value = PoisonedFloats({2, 2, 32});
  EXPECT_DEATH(TestOps().RopeQkv(p),
               "want qkv: \\[num_tokens, \\(num_heads \\+ 2 \\* num_kv_heads\\) \\* head_dim\\] = "
               "\\[2, 384\\] \\(qkv \\[2, 320\\] float32");
  p.qkv = PoisonedFloats({2, 12 * 32});
  p.inv_freq = PoisonedFloats({32});
  EXPECT_DEATH(TestOps().RopeQkv(p), "inv_freq: \\[head_dim / 2\\]");
}

}  // namespace
}  // namespace pagedllm::kernels
