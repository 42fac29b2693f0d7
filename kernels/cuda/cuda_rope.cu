// RopeQkv: split the fused QKV rows and apply rotary embedding, rotate_half convention
// (dimension i pairs with i + head_dim/2), as kernels/cpu/cpu_rope.cc and Hugging Face Llama:
//   angle = float(position) * inv_freq[i]                   (float32)
//   cos, sin = T(cos(angle)), T(sin(angle))                 (rounded to the activations' dtype)
//   out[i]        = T(T(x[i] * cos) - T(x[i + half] * sin)) (q * cos + rotate_half(q) * sin)
//   out[i + half] = T(T(x[i + half] * cos) + T(x[i] * sin))
// For float32 the roundings are the identity and this is the CPU backend's formula.
#include <algorithm>

#include "common/check.h"
#include "kernels/cuda/cuda_kernel_util.cuh"

namespace pagedllm::kernels::cuda {
namespace {

// Grid (tokens, heads + kv_heads + kv_heads): block (t, h) handles head h of token t's fused row:
// query heads, then key heads (rotated), then value heads (copied). One thread per rotated pair
// (or per two copied values), so a token's heads run on as many SMs as there are heads: at one
// token per step a single block per token was a 10-17 us chain of dependent loads per layer.
// Each thread computes its own cos and sin (the same float32 formula as before, so the same
// bits), which costs less than sharing them through shared memory across blocks would.
template <typename T>
__global__ void RopeQkvKernel(const T* __restrict__ qkv, const int32_t* __restrict__ positions,
                              const float* __restrict__ inv_freq, T* __restrict__ query,
                              T* __restrict__ key, T* __restrict__ value, int num_heads,
                              int num_kv_heads, int head_dim) {
  const int half = head_dim / 2;
  const int64_t token = blockIdx.x;
  const int head = blockIdx.y;
  const int64_t q_width = static_cast<int64_t>(num_heads) * head_dim;
  const int64_t kv_width = static_cast<int64_t>(num_kv_heads) * head_dim;
  const T* row = qkv + token * (q_width + 2 * kv_width);
  const T* source = row + static_cast<int64_t>(head) * head_dim;
  if (head >= num_heads + num_kv_heads) {  // a value head: copied as it is
    const int v_head = head - num_heads - num_kv_heads;
    T* target = value + token * kv_width + static_cast<int64_t>(v_head) * head_dim;
    for (int i = threadIdx.x; i < head_dim; i += blockDim.x) target[i] = source[i];
    return;
  }
  const float position = static_cast<float>(positions[token]);
  T* target = head < num_heads ? query + (token * num_heads + head) * head_dim
                               : key + (token * num_kv_heads + (head - num_heads)) * head_dim;
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    float sin_value, cos_value;
    sincosf(__fmul_rn(position, inv_freq[i]), &sin_value, &cos_value);
    const float c = Round<T>(cos_value), s = Round<T>(sin_value);
    const float a = ToFloat(source[i]), b = ToFloat(source[i + half]);
    target[i] = FromFloat<T>(Round<T>(__fmul_rn(a, c)) - Round<T>(__fmul_rn(b, s)));
    target[i + half] = FromFloat<T>(Round<T>(__fmul_rn(b, c)) + Round<T>(__fmul_rn(a, s)));
  }
}

}  // namespace

void LaunchRopeQkv(const RopeQkvArgs& a, cudaStream_t stream) {
  if (a.num_tokens == 0 || a.head_dim == 0) return;
  const int64_t heads = a.num_heads + 2 * a.num_kv_heads;
  PAGEDLLM_CHECK(a.num_tokens <= 0x7fffffff && heads <= 65535, "RopeQkv: ", a.num_tokens,
                 " tokens x ", heads, " heads is too large a grid");
  const int threads = static_cast<int>(
      std::min<int64_t>(256, std::max<int64_t>(32, CeilDiv(a.head_dim / 2, 32) * 32)));
  const dim3 grid(static_cast<unsigned>(a.num_tokens), static_cast<unsigned>(heads));
  DispatchFloat(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    RopeQkvKernel<T><<<grid, threads, 0, stream>>>(
        static_cast<const T*>(a.qkv), a.positions, a.inv_freq, static_cast<T*>(a.query),
        static_cast<T*>(a.key), static_cast<T*>(a.value), static_cast<int>(a.num_heads),
        static_cast<int>(a.num_kv_heads), static_cast<int>(a.head_dim));
  });
}

}  // namespace pagedllm::kernels::cuda
