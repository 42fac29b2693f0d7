// GEMV / skinny GEMM for decode batches: y[m, n] = x[m, k] · w[n, k]ᵀ for 1 <= m <= 8 in
// bfloat16 or float16, memory bound on the weight. Each warp owns R consecutive output columns
// (rows of w) and streams them with 16-byte non-coherent loads that bypass L1 (U of them per row
// in flight per lane), while the m rows of x (at most 8 x 14336 x 2 bytes) come through the
// read-only cache, where every warp of the SM reuses them. Products accumulate in float32 per
// lane, the warp reduces them with shuffles, and each y element is rounded to T once. No split-K,
// no workspace, no synchronisation: capturable in a CUDA graph.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

#include "kernels/cuda/cuda_kernel_util.cuh"
#include "kernels/cuda/cuda_linear.h"

namespace pagedllm::kernels::cuda {
namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kVecElems = 8;  // elements of a 16-bit type in one 16-byte load

// 16 bytes of weights, read once per call: non-coherent path, no L1 allocation (leaving L1 to
// x), and a 256-byte L2 prefetch since the warp reads the rest of the line right after.
__device__ __forceinline__ uint4 LoadStreaming(const uint4* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

// The two 16-bit values packed in `bits` (low half first) as floats.
__device__ __forceinline__ float2 Unpack(uint32_t bits, __nv_bfloat16) {
  return make_float2(__uint_as_float(bits << 16), __uint_as_float(bits & 0xffff0000u));
}
__device__ __forceinline__ float2 Unpack(uint32_t bits, __half) {
  __half2 h;
  static_assert(sizeof(h) == sizeof(bits), "__half2 is 4 bytes");
  memcpy(&h, &bits, sizeof(bits));
  return __half22float2(h);
}

// 8 values of T in a 16-byte vector, as floats.
template <typename T>
__device__ __forceinline__ void UnpackVec(const uint4& v, float (&out)[kVecElems]) {
  const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float2 f = Unpack(words[j], T{});
    out[2 * j] = f.x;
    out[2 * j + 1] = f.y;
  }
}

// x: [M, k], w: [n, k], y: [M, n]; k % 8 == 0, x and w 16-byte aligned. Warp g of the grid owns
// rows [g * R, g * R + R) of w; a row past n re-reads row n - 1 and stores nothing.
template <typename T, int M, int R, int U>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    GemvKernel(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y, int64_t n,
               int64_t k) {
  const int lane = threadIdx.x & 31;
  const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5)) * R;
  if (row0 >= n) return;             // the whole warp leaves together
  const int64_t kv = k / kVecElems;  // 16-byte vectors per row
  const uint4* xv = reinterpret_cast<const uint4*>(x);
  const uint4* wv[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int64_t row = row0 + r < n ? row0 + r : n - 1;
    wv[r] = reinterpret_cast<const uint4*>(w) + row * kv;
  }

  float acc[M][R];
#pragma unroll
  for (int i = 0; i < M; ++i) {
#pragma unroll
    for (int r = 0; r < R; ++r) acc[i][r] = 0.0f;
  }

  for (int64_t base = lane; base < kv; base += 32 * U) {
    // Issue every weight load of this step before using any: U * R * 16 bytes per lane in flight.
    uint4 wr[U][R];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t idx = base + 32 * u;
#pragma unroll
      for (int r = 0; r < R; ++r) {
        wr[u][r] = idx < kv ? LoadStreaming(wv[r] + idx) : make_uint4(0u, 0u, 0u, 0u);
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t idx = base + 32 * u;
      if (idx >= kv) break;  // the k tail: lanes past the end have nothing left this step
      float wf[R][kVecElems];
#pragma unroll
      for (int r = 0; r < R; ++r) UnpackVec<T>(wr[u][r], wf[r]);
#pragma unroll
      for (int i = 0; i < M; ++i) {
        float xf[kVecElems];
        UnpackVec<T>(__ldg(xv + i * kv + idx), xf);
#pragma unroll
        for (int r = 0; r < R; ++r) {
#pragma unroll
          for (int e = 0; e < kVecElems; ++e) acc[i][r] = fmaf(xf[e], wf[r][e], acc[i][r]);
        }
      }
    }
  }

  // Warp-wide sums; lane i * R + r stores y[i][row0 + r], rounded once.
#pragma unroll
  for (int i = 0; i < M; ++i) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      float v = acc[i][r];
#pragma unroll
      for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
      if (lane == i * R + r && row0 + r < n) y[i * n + row0 + r] = FromFloat<T>(v);
    }
  }
}

template <typename T, int M>
void LaunchRows(const void* x, const void* w, void* y, int64_t n, int64_t k, cudaStream_t stream) {
  // Two rows per warp for m <= 2, four above (x's cache reads per weight byte are m / R); U
  // keeps 8 loads of 16 bytes in flight per lane either way.
  constexpr int R = M <= 2 ? 2 : 4;
  constexpr int U = 8 / R;
  const int64_t blocks = CeilDiv(n, int64_t{R} * kWarpsPerBlock);
  GemvKernel<T, M, R, U><<<static_cast<unsigned>(blocks), kWarpsPerBlock * 32, 0, stream>>>(
      static_cast<const T*>(x), static_cast<const T*>(w), static_cast<T*>(y), n, k);
}

template <typename T>
void LaunchTyped(const void* x, const void* w, void* y, int64_t m, int64_t n, int64_t k,
                 cudaStream_t stream) {
  switch (m) {
    case 1:
      return LaunchRows<T, 1>(x, w, y, n, k, stream);
    case 2:
      return LaunchRows<T, 2>(x, w, y, n, k, stream);
    case 3:
      return LaunchRows<T, 3>(x, w, y, n, k, stream);
    case 4:
      return LaunchRows<T, 4>(x, w, y, n, k, stream);
    case 5:
      return LaunchRows<T, 5>(x, w, y, n, k, stream);
    case 6:
      return LaunchRows<T, 6>(x, w, y, n, k, stream);
    case 7:
      return LaunchRows<T, 7>(x, w, y, n, k, stream);
    default:
      return LaunchRows<T, 8>(x, w, y, n, k, stream);
  }
}

}  // namespace

bool GemvApplies(FloatType dtype, const void* x, const void* w, int64_t m, int64_t n, int64_t k) {
  return dtype != FloatType::kFloat32 && m >= 1 && m <= kGemvMaxRows && n >= 1 && k >= 1 &&
         k % kVecElems == 0 && Aligned(16, x, w) &&
         CeilDiv(n, int64_t{2} * kWarpsPerBlock) <= int64_t{0x7fffffff};
}

bool LaunchGemv(FloatType dtype, const void* x, const void* w, void* y, int64_t m, int64_t n,
                int64_t k, cudaStream_t stream) {
  if (!GemvApplies(dtype, x, w, m, n, k)) return false;
  if (dtype == FloatType::kBFloat16) {
    LaunchTyped<__nv_bfloat16>(x, w, y, m, n, k, stream);
  } else {
    LaunchTyped<__half>(x, w, y, m, n, k, stream);
  }
  return true;
}

}  // namespace pagedllm::kernels::cuda
