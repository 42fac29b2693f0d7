// Launchers for the CUDA kernels of CudaOps (all but attention and Linear). Plain C++ with raw
// pointers, so the .cu files need neither Abseil nor Tensor: cuda_ops.cc and cuda_copy_ops.cc
// check shapes and dtypes, then call these. Every launcher enqueues on `stream`, never
// synchronises, and aborts (PAGEDLLM_CUDA_CHECK) if the launch itself fails. Device-side bound
// violations (an index outside a table) print the offending value and trap, which surfaces as
// cudaErrorLaunchFailure at the next checked call: they are caller bugs, like CHECK failures.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace pagedllm::kernels::cuda {

// The float dtypes the kernels are instantiated for (kernels::DType without int32).
enum class FloatType : int8_t { kFloat32, kBFloat16, kFloat16 };

// The launchers only launch: CudaOps notes a refused launch after each (CudaOps::NoteLaunch),
// and the step that ran it fails (Ops::TakeFailure).

// Row-wise ops ------------------------------------------------------------------------------

struct RmsNormArgs {
  FloatType dtype = FloatType::kFloat32;
  const void* x = nullptr;       // [rows, hidden]
  void* residual = nullptr;      // [rows, hidden]; non-null: residual += x first (AddRmsNorm)
  const void* weight = nullptr;  // [hidden]
  void* out = nullptr;           // [rows, hidden]; may alias x or residual
  int64_t rows = 0;
  int64_t hidden = 0;
  float eps = 0.0f;
};
void LaunchRmsNorm(const RmsNormArgs& args, cudaStream_t stream);

// out = silu(gate) * up; gate_up: [rows, 2 * intermediate], out: [rows, intermediate].
void LaunchSiluAndMul(FloatType dtype, const void* gate_up, void* out, int64_t rows,
                      int64_t intermediate, cudaStream_t stream);

struct RopeQkvArgs {
  FloatType dtype = FloatType::kFloat32;
  const void* qkv = nullptr;           // [num_tokens, (num_heads + 2 * num_kv_heads) * head_dim]
  const int32_t* positions = nullptr;  // [num_tokens]
  const float* inv_freq = nullptr;     // [head_dim / 2]
  void* query = nullptr;               // [num_tokens, num_heads, head_dim]
  void* key = nullptr;                 // [num_tokens, num_kv_heads, head_dim]
  void* value = nullptr;               // [num_tokens, num_kv_heads, head_dim]
  int64_t num_tokens = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
};
void LaunchRopeQkv(const RopeQkvArgs& args, cudaStream_t stream);

// Copies (dtype-agnostic: rows of bytes) ----------------------------------------------------

// out[i] = table[ids[i] - vocab_begin], or zeros when that row is outside [0, vocab_rows).
// ids: [n], table: [vocab_rows, row_bytes], out: [n, row_bytes].
void LaunchEmbedding(const int32_t* ids, const void* table, int64_t vocab_begin, int64_t vocab_rows,
                     void* out, int64_t n, int64_t row_bytes, cudaStream_t stream);

// out[i] = x[indices[i]]; an index outside [0, x_rows) traps. x: [x_rows, row_bytes].
void LaunchGatherRows(const void* x, int64_t x_rows, const int32_t* indices, void* out, int64_t n,
                      int64_t row_bytes, cudaStream_t stream);

// key_cache[slots[i]] = key[i], value_cache[slots[i]] = value[i]; negative slots skip, slots
// >= num_slots trap. key/value: [n, row_bytes], caches: [num_slots, row_bytes].
void LaunchWriteKvCache(const void* key, const void* value, const int32_t* slots, void* key_cache,
                        void* value_cache, int64_t n, int64_t num_slots, int64_t row_bytes,
                        cudaStream_t stream);

// cache[pairs[i][1]] = cache[pairs[i][0]] for every pair, in one launch; block ids outside
// [0, num_blocks) trap. cache: [num_blocks, block_bytes], pairs: [num_pairs, 2].
void LaunchCopyBlocks(void* cache, const int32_t* pairs, int64_t num_pairs, int64_t num_blocks,
                      int64_t block_bytes, cudaStream_t stream);

// out[i] = convert(in[i]) rounding to nearest even, for from != to.
void LaunchCast(FloatType from, const void* in, FloatType to, void* out, int64_t n,
                cudaStream_t stream);

}  // namespace pagedllm::kernels::cuda
