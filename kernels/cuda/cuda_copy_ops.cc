// The copy ops of CudaOps: Embedding, GatherRows, WriteKvCache, CopyBlocks and Cast. Shape checks
// as the CPU backend's (kernels/cpu/cpu_misc.cc, cpu_cache.cc); kernels in cuda_copy.cu. Like the
// CPU ops, the row copies take any dtype that agrees between their inputs and outputs.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_device.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/cuda_op_checks.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/op_checks.h"

namespace pagedllm::kernels {
namespace {

using kernels::DescribeTensors;

}  // namespace

// token_ids: [n] int32, table: [vocab_local, hidden] holding ids
// [vocab_begin, vocab_begin + vocab_local), out: [n, hidden] (same dtype as table).
void CudaOps::Embedding(const Tensor& token_ids, const Tensor& table, int64_t vocab_begin,
                        const Tensor& out) {
  kernels::CheckEmbeddingArgs(device_, token_ids, table, out);
  const int64_t row_bytes = table.dim(1) * static_cast<int64_t>(DTypeSize(table.dtype()));
  cuda::LaunchEmbedding(token_ids.data<int32_t>(), table.raw_data(), vocab_begin, table.dim(0),
                        out.raw_data(), token_ids.dim(0), row_bytes, stream());
  NoteLaunch("Embedding");
}

// x: [n, d], indices: [m] int32 in [0, n), out: [m, d] (same dtype as x).
void CudaOps::GatherRows(const Tensor& x, const Tensor& indices, const Tensor& out) {
  kernels::CheckGatherRowsArgs(device_, x, indices, out);
  const int64_t row_bytes = x.dim(1) * static_cast<int64_t>(DTypeSize(x.dtype()));
  cuda::LaunchGatherRows(x.raw_data(), x.dim(0), indices.data<int32_t>(), out.raw_data(),
                         indices.dim(0), row_bytes, stream());
  NoteLaunch("GatherRows");
}

// key, value: [n, num_kv_heads, head_dim], slot_mapping: [n] int32,
// key_cache, value_cache: [num_blocks, block_size, num_kv_heads, head_dim].
void CudaOps::WriteKvCache(const Tensor& key, const Tensor& value, const Tensor& slot_mapping,
                           const Tensor& key_cache, const Tensor& value_cache) {
  kernels::CheckWriteKvCacheArgs(device_, key, value, slot_mapping, key_cache, value_cache);
  const int64_t row_bytes = key.dim(1) * key.dim(2) * static_cast<int64_t>(DTypeSize(key.dtype()));
  cuda::LaunchWriteKvCache(key.raw_data(), value.raw_data(), slot_mapping.data<int32_t>(),
                           key_cache.raw_data(), value_cache.raw_data(), key.dim(0),
                           key_cache.dim(0) * key_cache.dim(1), row_bytes, stream());
  NoteLaunch("WriteKvCache");
}

// cache: [num_blocks, ...], pairs: [num_pairs, 2] int32 of (src, dst). All pairs are copied in
// one launch, in parallel: callers keep destinations distinct from every source.
void CudaOps::CopyBlocks(const Tensor& cache, const Tensor& pairs) {
  const int64_t block_bytes =
      static_cast<int64_t>(kernels::CheckCopyBlocksArgs(device_, cache, pairs));
  const int64_t num_blocks = cache.dim(0);
  cuda::LaunchCopyBlocks(cache.raw_data(), pairs.data<int32_t>(), pairs.dim(0), num_blocks,
                         block_bytes, stream());
  NoteLaunch("CopyBlocks");
}

// in, out: the same shape; float32, bfloat16 and float16 convert to each other (rounding to
// nearest even), and any dtype copies to itself.
void CudaOps::Cast(const Tensor& in, const Tensor& out) {
  constexpr const char* kOp = "Cast";
  kernels::CheckCastArgs(device_, in, out);
  if (in.dtype() == out.dtype()) {
    if (in.raw_data() != out.raw_data() && in.bytes() > 0) {
      NoteCall(kOp, cudaMemcpyAsync(out.raw_data(), in.raw_data(), in.bytes(),
                                    cudaMemcpyDeviceToDevice, stream()));
    }
    return;
  }
  PAGEDLLM_CHECK(in.dtype() != DType::kInt32 && out.dtype() != DType::kInt32, kOp,
                 ": only float dtypes convert (", DescribeTensors({{"in", &in}, {"out", &out}}),
                 ")");
  cuda::LaunchCast(cuda::ToFloatType(kOp, "in", in), in.raw_data(),
                   cuda::ToFloatType(kOp, "out", out), out.raw_data(), in.numel(), stream());
  NoteLaunch("Cast");
}

}  // namespace pagedllm::kernels
