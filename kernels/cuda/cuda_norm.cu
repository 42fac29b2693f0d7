// RmsNorm / AddRmsNorm and SiluAndMul kernels, rounding as Hugging Face Llama does in 16 bits.
//
// LlamaRMSNorm in T (bf16/fp16):   h = float(x); var = mean(h²) (float32);
//                                  out = weight * T(h * rsqrt(var + eps))   (product rounded to T)
// AddRmsNorm first rounds the residual sum to T (residual = residual + x in T), as the decoder
// layer does. LlamaMLP: out = T(silu(gate)) * up, silu in float32, then rounded, then the product
// rounded. For float32 every rounding is the identity and the formulas are the CPU backend's.
#include <algorithm>

#include "kernels/cuda/cuda_kernel_util.cuh"

namespace pagedllm::kernels::cuda {
namespace {

// One block per row; each thread keeps kItems vectors of kVec elements in registers between the
// sum of squares and the output, so x (and residual) are read from memory once.
template <typename T, int kVec, int kItems, bool kAdd>
__global__ void RmsNormKernel(const T* x, T* residual, const T* __restrict__ weight, T* out,
                              int64_t hidden, float eps) {
  using V = Vec<T, kVec>;
  const int64_t row = blockIdx.x;
  const int num_vecs = static_cast<int>(hidden / kVec);
  const V* x_row = reinterpret_cast<const V*>(x + row * hidden);
  V* residual_row = kAdd ? reinterpret_cast<V*>(residual + row * hidden) : nullptr;
  float values[kItems][kVec];
  float sum_squares = 0.0f;
#pragma unroll
  for (int item = 0; item < kItems; ++item) {
    const int index = threadIdx.x + item * blockDim.x;
    if (index < num_vecs) {
      const V xv = x_row[index];
      if constexpr (kAdd) {
        V rv = residual_row[index];
#pragma unroll
        for (int j = 0; j < kVec; ++j) {
          rv.v[j] = FromFloat<T>(ToFloat(rv.v[j]) + ToFloat(xv.v[j]));
          values[item][j] = ToFloat(rv.v[j]);
        }
        residual_row[index] = rv;
      } else {
#pragma unroll
        for (int j = 0; j < kVec; ++j) values[item][j] = ToFloat(xv.v[j]);
      }
#pragma unroll
      for (int j = 0; j < kVec; ++j)
        sum_squares = fmaf(values[item][j], values[item][j], sum_squares);
    }
  }
  const float variance = BlockSum(sum_squares) / static_cast<float>(hidden);
  const float inv_rms = 1.0f / sqrtf(variance + eps);
  const V* w = reinterpret_cast<const V*>(weight);
  V* out_row = reinterpret_cast<V*>(out + row * hidden);
#pragma unroll
  for (int item = 0; item < kItems; ++item) {
    const int index = threadIdx.x + item * blockDim.x;
    if (index < num_vecs) {
      const V wv = w[index];
      V ov;
#pragma unroll
      for (int j = 0; j < kVec; ++j) {
        const float normed = Round<T>(__fmul_rn(values[item][j], inv_rms));
        ov.v[j] = FromFloat<T>(__fmul_rn(ToFloat(wv.v[j]), normed));
      }
      out_row[index] = ov;
    }
  }
}

// Rows too long for the register kernel: two passes over global memory (the second mostly from
// cache). Any alignment.
template <typename T, bool kAdd>
__global__ void RmsNormLoopKernel(const T* x, T* residual, const T* __restrict__ weight, T* out,
                                  int64_t hidden, float eps) {
  const int64_t row = blockIdx.x;
  const T* x_row = x + row * hidden;
  T* residual_row = kAdd ? residual + row * hidden : nullptr;
  float sum_squares = 0.0f;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    float value;
    if constexpr (kAdd) {
      const T sum = FromFloat<T>(ToFloat(residual_row[i]) + ToFloat(x_row[i]));
      residual_row[i] = sum;
      value = ToFloat(sum);
    } else {
      value = ToFloat(x_row[i]);
    }
    sum_squares = fmaf(value, value, sum_squares);
  }
  const float variance = BlockSum(sum_squares) / static_cast<float>(hidden);
  const float inv_rms = 1.0f / sqrtf(variance + eps);
  const T* source = kAdd ? residual_row : x_row;
  T* out_row = out + row * hidden;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    const float normed = Round<T>(__fmul_rn(ToFloat(source[i]), inv_rms));
    out_row[i] = FromFloat<T>(__fmul_rn(ToFloat(weight[i]), normed));
  }
}

constexpr int kMaxNormThreads = 1024;
constexpr int kTargetNormThreads = 512;

template <typename T, int kVec, int kItems, bool kAdd>
void LaunchRegisterNorm(const RmsNormArgs& a, int threads, cudaStream_t stream) {
  RmsNormKernel<T, kVec, kItems, kAdd><<<static_cast<unsigned>(a.rows), threads, 0, stream>>>(
      static_cast<const T*>(a.x), static_cast<T*>(a.residual), static_cast<const T*>(a.weight),
      static_cast<T*>(a.out), a.hidden, a.eps);
}

// Picks the fewest items per thread that keep the block at <= 512 threads (<= 1024 at 8 items).
template <typename T, int kVec, bool kAdd>
bool TryRegisterNorm(const RmsNormArgs& a, cudaStream_t stream) {
  const int64_t num_vecs = a.hidden / kVec;
  const auto threads_for = [num_vecs](int items) {
    return static_cast<int>(std::max<int64_t>(32, CeilDiv(CeilDiv(num_vecs, items), 32) * 32));
  };
  if (threads_for(1) <= kTargetNormThreads) {
    LaunchRegisterNorm<T, kVec, 1, kAdd>(a, threads_for(1), stream);
  } else if (threads_for(2) <= kTargetNormThreads) {
    LaunchRegisterNorm<T, kVec, 2, kAdd>(a, threads_for(2), stream);
  } else if (threads_for(4) <= kTargetNormThreads) {
    LaunchRegisterNorm<T, kVec, 4, kAdd>(a, threads_for(4), stream);
  } else if (threads_for(8) <= kMaxNormThreads) {
    LaunchRegisterNorm<T, kVec, 8, kAdd>(a, threads_for(8), stream);
  } else {
    return false;
  }
  return true;
}

template <typename T, bool kAdd>
void LaunchNormTyped(const RmsNormArgs& a, cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(T);
  const bool vectorised = a.hidden % kVec == 0 && Aligned(16, a.x, a.residual, a.weight, a.out);
  const bool launched = vectorised ? TryRegisterNorm<T, kVec, kAdd>(a, stream)
                                   : TryRegisterNorm<T, 1, kAdd>(a, stream);
  if (!launched) {
    RmsNormLoopKernel<T, kAdd><<<static_cast<unsigned>(a.rows), kMaxNormThreads, 0, stream>>>(
        static_cast<const T*>(a.x), static_cast<T*>(a.residual), static_cast<const T*>(a.weight),
        static_cast<T*>(a.out), a.hidden, a.eps);
  }
}

// One thread per kVec outputs of one row.
template <typename T, int kVec>
__global__ void SiluAndMulKernel(const T* __restrict__ gate_up, T* __restrict__ out,
                                 int64_t total_vecs, int64_t row_vecs) {
  using V = Vec<T, kVec>;
  const int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= total_vecs) return;
  const int64_t row = index / row_vecs, column = index - row * row_vecs;
  const V* gate = reinterpret_cast<const V*>(gate_up) + row * 2 * row_vecs + column;
  const V g = gate[0];
  const V u = gate[row_vecs];
  V o;
#pragma unroll
  for (int j = 0; j < kVec; ++j) {
    const float x = ToFloat(g.v[j]);
    const float silu = Round<T>(x / (1.0f + expf(-x)));
    o.v[j] = FromFloat<T>(__fmul_rn(silu, ToFloat(u.v[j])));
  }
  reinterpret_cast<V*>(out)[index] = o;
}

template <typename T, int kVec>
void LaunchSiluTyped(const void* gate_up, void* out, int64_t rows, int64_t intermediate,
                     cudaStream_t stream) {
  constexpr int kThreads = 256;
  const int64_t row_vecs = intermediate / kVec, total = rows * row_vecs;
  SiluAndMulKernel<T, kVec>
      <<<static_cast<unsigned>(CeilDiv(total, kThreads)), kThreads, 0, stream>>>(
          static_cast<const T*>(gate_up), static_cast<T*>(out), total, row_vecs);
}

}  // namespace

void LaunchRmsNorm(const RmsNormArgs& args, cudaStream_t stream) {
  if (args.rows == 0 || args.hidden == 0) return;
  DispatchFloat(args.dtype, [&](auto tag) {
    using T = decltype(tag);
    if (args.residual != nullptr) {
      LaunchNormTyped<T, true>(args, stream);
    } else {
      LaunchNormTyped<T, false>(args, stream);
    }
  });
}

void LaunchSiluAndMul(FloatType dtype, const void* gate_up, void* out, int64_t rows,
                      int64_t intermediate, cudaStream_t stream) {
  if (rows == 0 || intermediate == 0) return;
  DispatchFloat(dtype, [&](auto tag) {
    using T = decltype(tag);
    constexpr int kVec = 16 / sizeof(T);
    if (intermediate % kVec == 0 && Aligned(16, gate_up, out)) {
      LaunchSiluTyped<T, kVec>(gate_up, out, rows, intermediate, stream);
    } else {
      LaunchSiluTyped<T, 1>(gate_up, out, rows, intermediate, stream);
    }
  });
}

}  // namespace pagedllm::kernels::cuda
