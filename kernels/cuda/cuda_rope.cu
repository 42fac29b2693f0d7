// RopeQkv: split the fused QKV rows and apply rotary embedding, rotate_half convention
// (dimension i pairs with i + head_dim/2), as kernels/cpu/cpu_rope.cc and Hugging Face Llama:
//   angle = float(position) * inv_freq[i]                   (float32)
//   cos, sin = T(cos(angle)), T(sin(angle))                 (rounded to the activations' dtype)
//   out[i]        = T(T(x[i] * cos) - T(x[i + half] * sin)) (q * cos + rotate_half(q) * sin)
//   out[i + half] = T(T(x[i + half] * cos) + T(x[i] * sin))
// For float32 the roundings are the identity and this is the CPU backend's formula.
#include <algorithm>

#include "kernels/cuda/cuda_kernel_util.cuh"

namespace pagedllm::kernels::cuda {
namespace {

// One block per token. Shared memory: cos[half] then sin[half], already rounded to T.
template <typename T>
__global__ void RopeQkvKernel(const T* __restrict__ qkv, const int32_t* __restrict__ positions,
                              const float* __restrict__ inv_freq, T* __restrict__ query,
                              T* __restrict__ key, T* __restrict__ value, int num_heads,
                              int num_kv_heads, int head_dim) {
  extern __shared__ float cos_sin[];
  const int half = head_dim / 2;
  const int64_t token = blockIdx.x;
  const float position = static_cast<float>(positions[token]);
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    float sin_value, cos_value;
    sincosf(__fmul_rn(position, inv_freq[i]), &sin_value, &cos_value);
    cos_sin[i] = Round<T>(cos_value);
    cos_sin[half + i] = Round<T>(sin_value);
  }
  __syncthreads();

  const int64_t q_width = static_cast<int64_t>(num_heads) * head_dim;
  const int64_t kv_width = static_cast<int64_t>(num_kv_heads) * head_dim;
  const T* row = qkv + token * (q_width + 2 * kv_width);
  // Query heads then key heads sit back to back in the row: rotated head h starts at h * head_dim.
  const int rotated_pairs = (num_heads + num_kv_heads) * half;
  for (int p = threadIdx.x; p < rotated_pairs; p += blockDim.x) {
    const int head = p / half, i = p - head * half;
    const T* source = row + static_cast<int64_t>(head) * head_dim;
    T* target = head < num_heads ? query + (token * num_heads + head) * head_dim
                                 : key + (token * num_kv_heads + (head - num_heads)) * head_dim;
    const float a = ToFloat(source[i]), b = ToFloat(source[i + half]);
    const float c = cos_sin[i], s = cos_sin[half + i];
    target[i] = FromFloat<T>(Round<T>(__fmul_rn(a, c)) - Round<T>(__fmul_rn(b, s)));
    target[i + half] = FromFloat<T>(Round<T>(__fmul_rn(b, c)) + Round<T>(__fmul_rn(a, s)));
  }
  const T* value_source = row + q_width + kv_width;
  T* value_target = value + token * kv_width;
  for (int64_t i = threadIdx.x; i < kv_width; i += blockDim.x) value_target[i] = value_source[i];
}

}  // namespace

void LaunchRopeQkv(const RopeQkvArgs& a, cudaStream_t stream) {
  if (a.num_tokens == 0 || a.head_dim == 0) return;
  const int64_t pairs = (a.num_heads + a.num_kv_heads) * (a.head_dim / 2);
  const int threads =
      static_cast<int>(std::min<int64_t>(256, std::max<int64_t>(32, CeilDiv(pairs, 32) * 32)));
  const size_t shared_bytes = static_cast<size_t>(a.head_dim) * sizeof(float);
  DispatchFloat(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    RopeQkvKernel<T><<<static_cast<unsigned>(a.num_tokens), threads, shared_bytes, stream>>>(
        static_cast<const T*>(a.qkv), a.positions, a.inv_freq, static_cast<T*>(a.query),
        static_cast<T*>(a.key), static_cast<T*>(a.value), static_cast<int>(a.num_heads),
        static_cast<int>(a.num_kv_heads), static_cast<int>(a.head_dim));
  });
  CheckLaunch("RopeQkv");
}

}  // namespace pagedllm::kernels::cuda
