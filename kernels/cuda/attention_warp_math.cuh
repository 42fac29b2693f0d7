// Per-warp tile arithmetic of the paged-attention kernels, in the register layout of the
// m16n8k16 MMA accumulator: lane l holds rows l/4 and l/4 + 8 of the warp's 16 query rows, and
// columns 2(l%4), 2(l%4) + 1 of every 8-wide column tile.
//
//   WarpScores: s[16 x kKeys]   = Q[16 x D] · K[kKeys x D]ᵀ
//   WarpPv:     acc[16 x D]    += P[16 x kKeys] · V[kKeys x D]
//
// bf16/fp16 run on the tensor cores (ldmatrix + mma.sync); float32 (kept for exact comparisons
// with the CPU backend) runs on the CUDA cores with the same register layout, so the softmax and
// the epilogue are shared. Operands live in shared memory, rows `kStride` elements apart.
#pragma once

#include <type_traits>

#include "kernels/cuda/attention_primitives.cuh"

namespace pagedllm::kernels::attention {

template <typename T, int kHeadDim, int kKeys, int kStride>
struct WarpMath {
  static constexpr int kKeyTiles = kKeys / 8;     // 8-wide column tiles of s
  static constexpr int kDimTiles = kHeadDim / 8;  // 8-wide column tiles of acc
  static_assert(kKeys % 16 == 0 && kHeadDim % 16 == 0, "MMA tiles are 16 deep");

  // q: the warp's 16 query rows; k: the warp's kKeys key rows. Overwrites s.
  static __device__ __forceinline__ void Scores(const T* q, const T* k, float (&s)[kKeyTiles][4],
                                                int lane) {
#pragma unroll
    for (int n = 0; n < kKeyTiles; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
    const uint32_t q_base = SmemAddress(q), k_base = SmemAddress(k);
    // A (Q): matrices (rows 0-7 | 8-15) x (columns 0-7 | 8-15) of the 16x16 step.
    const uint32_t q_lane =
        q_base + ((lane % 8 + 8 * ((lane / 8) % 2)) * kStride + 8 * (lane / 16)) *
                     static_cast<uint32_t>(sizeof(T));
    // B (K as columns): matrices (keys 0-7, dims 0-7), (keys 0-7, dims 8-15), (keys 8-15, ...).
    const uint32_t k_lane =
        k_base + ((lane % 8 + 8 * (lane / 16)) * kStride + 8 * ((lane / 8) % 2)) *
                     static_cast<uint32_t>(sizeof(T));
#pragma unroll
    for (int kk = 0; kk < kHeadDim / 16; ++kk) {
      uint32_t a[4];
      LdMatrixX4(q_lane + kk * 16 * sizeof(T), a);
#pragma unroll
      for (int np = 0; np < kKeys / 16; ++np) {
        uint32_t b[4];
        LdMatrixX4(k_lane + (np * 16 * kStride + kk * 16) * sizeof(T), b);
        Mma16816<T>(s[2 * np], a, b[0], b[1]);
        Mma16816<T>(s[2 * np + 1], a, b[2], b[3]);
      }
    }
  }

  // p: probabilities in the layout of s; v: the warp's kKeys value rows. `scratch` is unused.
  static __device__ __forceinline__ void Pv(const float (&p)[kKeyTiles][4], const T* v,
                                            float (&acc)[kDimTiles][4], float* scratch, int lane) {
    const uint32_t v_lane =
        SmemAddress(v) + ((lane % 8 + 8 * ((lane / 8) % 2)) * kStride + 8 * (lane / 16)) *
                             static_cast<uint32_t>(sizeof(T));
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk) {
      const uint32_t a[4] = {PackPair<T>(p[2 * kk][0], p[2 * kk][1]),
                             PackPair<T>(p[2 * kk][2], p[2 * kk][3]),
                             PackPair<T>(p[2 * kk + 1][0], p[2 * kk + 1][1]),
                             PackPair<T>(p[2 * kk + 1][2], p[2 * kk + 1][3])};
#pragma unroll
      for (int dp = 0; dp < kHeadDim / 16; ++dp) {
        uint32_t b[4];
        LdMatrixX4Trans(v_lane + (kk * 16 * kStride + dp * 16) * sizeof(T), b);
        Mma16816<T>(acc[2 * dp], a, b[0], b[1]);
        Mma16816<T>(acc[2 * dp + 1], a, b[2], b[3]);
      }
    }
  }
};

// float32: CUDA-core dot products in the MMA register layout.
template <int kHeadDim, int kKeys, int kStride>
struct WarpMath<float, kHeadDim, kKeys, kStride> {
  static constexpr int kKeyTiles = kKeys / 8;
  static constexpr int kDimTiles = kHeadDim / 8;

  static __device__ __forceinline__ void Scores(const float* q, const float* k,
                                                float (&s)[kKeyTiles][4], int lane) {
    const int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int n = 0; n < kKeyTiles; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll 2
    for (int d = 0; d < kHeadDim; d += 4) {
      const float4 q0 = *reinterpret_cast<const float4*>(q + g * kStride + d);
      const float4 q1 = *reinterpret_cast<const float4*>(q + (g + 8) * kStride + d);
#pragma unroll
      for (int n = 0; n < kKeyTiles; ++n) {
        const float4 k0 = *reinterpret_cast<const float4*>(k + (n * 8 + 2 * t) * kStride + d);
        const float4 k1 = *reinterpret_cast<const float4*>(k + (n * 8 + 2 * t + 1) * kStride + d);
        s[n][0] += q0.x * k0.x + q0.y * k0.y + q0.z * k0.z + q0.w * k0.w;
        s[n][1] += q0.x * k1.x + q0.y * k1.y + q0.z * k1.z + q0.w * k1.w;
        s[n][2] += q1.x * k0.x + q1.y * k0.y + q1.z * k0.z + q1.w * k0.w;
        s[n][3] += q1.x * k1.x + q1.y * k1.y + q1.z * k1.z + q1.w * k1.w;
      }
    }
  }

  // scratch: this warp's [16, kKeys] floats of shared memory for p.
  static __device__ __forceinline__ void Pv(const float (&p)[kKeyTiles][4], const float* v,
                                            float (&acc)[kDimTiles][4], float* scratch, int lane) {
    const int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int n = 0; n < kKeyTiles; ++n) {
      *reinterpret_cast<float2*>(scratch + g * kKeys + n * 8 + 2 * t) =
          make_float2(p[n][0], p[n][1]);
      *reinterpret_cast<float2*>(scratch + (g + 8) * kKeys + n * 8 + 2 * t) =
          make_float2(p[n][2], p[n][3]);
    }
    __syncwarp();
#pragma unroll 2
    for (int key = 0; key < kKeys; ++key) {
      const float p0 = scratch[g * kKeys + key], p1 = scratch[(g + 8) * kKeys + key];
#pragma unroll
      for (int dn = 0; dn < kDimTiles; ++dn) {
        const float2 value = *reinterpret_cast<const float2*>(v + key * kStride + dn * 8 + 2 * t);
        acc[dn][0] += p0 * value.x;
        acc[dn][1] += p0 * value.y;
        acc[dn][2] += p1 * value.x;
        acc[dn][3] += p1 * value.y;
      }
    }
    __syncwarp();
  }
};

}  // namespace pagedllm::kernels::attention
