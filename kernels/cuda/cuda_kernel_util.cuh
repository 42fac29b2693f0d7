// Device-side helpers shared by the .cu files of CudaOps: float conversions that round like
// PyTorch (to nearest even), aligned vectors for 16-byte loads, a block-wide sum, and the
// FloatType -> C++ type dispatch. Include only from .cu files.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/cuda_kernels.h"

namespace pagedllm::kernels::cuda {

__device__ __forceinline__ float ToFloat(float x) { return x; }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float ToFloat(__half x) { return __half2float(x); }

template <typename T>
__device__ __forceinline__ T FromFloat(float x);
template <>
__device__ __forceinline__ float FromFloat<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __forceinline__ __half FromFloat<__half>(float x) {
  return __float2half_rn(x);
}

// x rounded to T and back: what PyTorch's T-typed tensor holds after an op computed in float.
// The identity for float.
template <typename T>
__device__ __forceinline__ float Round(float x) {
  return ToFloat(FromFloat<T>(x));
}

// N elements of T loaded or stored as one access of N * sizeof(T) bytes (16 for the fast
// paths); the pointer must be aligned to that.
template <typename T, int N>
struct alignas(sizeof(T) * N) Vec {
  T v[N];
};

// Sum of `value` over the block (blockDim.x a multiple of 32, at most 1024); every thread gets
// the total. Holds a __syncthreads(), so every thread of the block must call it.
__device__ __forceinline__ float BlockSum(float value) {
  __shared__ float warp_sums[32];
  __shared__ float total;
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = value;
  __syncthreads();
  if (warp == 0) {
    const int num_warps = blockDim.x >> 5;
    value = lane < num_warps ? warp_sums[lane] : 0.0f;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
      value += __shfl_xor_sync(0xffffffffu, value, offset);
    }
    if (lane == 0) total = value;
  }
  __syncthreads();
  return total;
}

// Calls fn(T{}) with T the C++ type of `dtype`: float, __nv_bfloat16 or __half.
template <typename Fn>
void DispatchFloat(FloatType dtype, Fn&& fn) {
  switch (dtype) {
    case FloatType::kFloat32:
      fn(float{});
      return;
    case FloatType::kBFloat16:
      fn(__nv_bfloat16{});
      return;
    case FloatType::kFloat16:
      fn(__half{});
      return;
  }
}

// True when every pointer is aligned to `bytes`.
inline bool Aligned(int64_t bytes, const void* a, const void* b = nullptr, const void* c = nullptr,
                    const void* d = nullptr) {
  const auto ok = [bytes](const void* p) {
    return reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(bytes) == 0;
  };
  return ok(a) && ok(b) && ok(c) && ok(d);
}

inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace pagedllm::kernels::cuda
