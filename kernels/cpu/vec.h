// Small float32 vector helpers for the CPU kernels, written so GCC vectorises them without
// -ffast-math: the dot product keeps 8 independent partial sums (a fixed summation order).
#pragma once

#include <cstdint>

namespace pagedllm::kernels::cpu {

// sum_i a[i] * b[i], accumulated in float32.
inline float Dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) acc[l] += a[i + l] * b[i + l];
  }
  float sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// y[i] += alpha * x[i].
inline void Axpy(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

}  // namespace pagedllm::kernels::cpu
