// RopeQkv: split the fused QKV projection and apply Hugging Face Llama's rotary embedding.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/op_checks.h"

namespace pagedllm::kernels::cpu {
namespace {

// rotate_half convention: dimension i pairs with i + half.
//   out[i]        = x[i] * cos[i] - x[i + half] * sin[i]
//   out[i + half] = x[i + half] * cos[i] + x[i] * sin[i]
void RotateHead(const float* x, const float* cos, const float* sin, int64_t half, float* out) {
  for (int64_t i = 0; i < half; ++i) {
    const float a = x[i], b = x[i + half];
    out[i] = a * cos[i] - b * sin[i];
    out[i + half] = b * cos[i] + a * sin[i];
  }
}

}  // namespace

// qkv: [num_tokens, (num_heads + 2 * num_kv_heads) * head_dim] = [q | k | v] per token,
// positions: [num_tokens] int32, inv_freq: [head_dim / 2] float32,
// query: [num_tokens, num_heads, head_dim], key/value: [num_tokens, num_kv_heads, head_dim].
void CpuOps::RopeQkv(const RopeQkvParams& p) {
  CheckRopeQkvArgs(device_, p, DType::kFloat32);
  const int64_t num_tokens = p.qkv.dim(0);
  const int64_t num_heads = p.query.dim(1), num_kv_heads = p.key.dim(1);
  const int64_t head_dim = p.query.dim(2), half = head_dim / 2;

  const float* qkv = p.qkv.data<float>();
  const int32_t* positions = p.positions.data<int32_t>();
  const float* inv_freq = p.inv_freq.data<float>();
  float* query = p.query.data<float>();
  float* key = p.key.data<float>();
  float* value = p.value.data<float>();
  const int64_t q_width = num_heads * head_dim, kv_width = num_kv_heads * head_dim;
  const int64_t row_width = q_width + 2 * kv_width;
  const int64_t grain = std::max<int64_t>(1, (1 << 14) / (row_width + 1));
  pool_->ParallelForRange(num_tokens, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> cos(half), sin(half);
    for (int64_t t = begin; t < end; ++t) {
      // Like Hugging Face: angle = float(position) * inv_freq[i] in float32, then cos/sin.
      const float position = static_cast<float>(positions[t]);
      for (int64_t i = 0; i < half; ++i) {
        const float angle = position * inv_freq[i];
        cos[i] = std::cos(angle);
        sin[i] = std::sin(angle);
      }
      const float* row = qkv + t * row_width;
      for (int64_t h = 0; h < num_heads; ++h) {
        RotateHead(row + h * head_dim, cos.data(), sin.data(), half,
                   query + (t * num_heads + h) * head_dim);
      }
      for (int64_t h = 0; h < num_kv_heads; ++h) {
        RotateHead(row + q_width + h * head_dim, cos.data(), sin.data(), half,
                   key + (t * num_kv_heads + h) * head_dim);
      }
      std::memcpy(value + t * kv_width, row + q_width + kv_width, kv_width * sizeof(float));
    }
  });
}

}  // namespace pagedllm::kernels::cpu
