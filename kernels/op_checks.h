// Argument checks shared by every backend (CPU and CUDA), so that both accept exactly the same
// calls and name the same problems. A failed check is a caller bug: it aborts with the op's name
// and the shapes involved, e.g.
//   "Linear: x [3, 5] float32 and weight [4, 6] float32 disagree on k (y [3, 4] float32)".
#pragma once

#include <initializer_list>
#include <string>
#include <utility>

#include "common/check.h"
#include "kernels/ops.h"
#include "kernels/tensor.h"

namespace pagedllm::kernels {

// "x [3, 5] float32, weight [4, 5] float32" for a list of (name, tensor).
std::string DescribeTensors(std::initializer_list<std::pair<const char*, const Tensor*>> tensors);

// Aborts unless `tensor` is non-empty, lives on `device` and has `dtype`.
void CheckTensor(const char* op, const char* name, const Tensor& tensor, const Device* device,
                 DType dtype);
// The same, for any dtype.
void CheckOnDevice(const char* op, const char* name, const Tensor& tensor, const Device* device);
// Aborts unless `tensor` has rank `rank`.
void CheckRank(const char* op, const char* name, const Tensor& tensor, int rank);

// Argument checks of whole ops, shared by every backend (abort with the shapes on mismatch).
void CheckEmbeddingArgs(const Device* device, const Tensor& token_ids, const Tensor& table,
                        const Tensor& out);
void CheckGatherRowsArgs(const Device* device, const Tensor& x, const Tensor& indices,
                         const Tensor& out);
// RopeQkv with qkv, query, key and value in `dtype` (inv_freq is always float32).
void CheckRopeQkvArgs(const Device* device, const RopeQkvParams& p, DType dtype);
void CheckWriteKvCacheArgs(const Device* device, const Tensor& key, const Tensor& value,
                           const Tensor& slot_mapping, const Tensor& key_cache,
                           const Tensor& value_cache);
// CopyBlocks: cache [num_blocks, ...], pairs [num_pairs, 2] int32. Returns one block's bytes.
size_t CheckCopyBlocksArgs(const Device* device, const Tensor& cache, const Tensor& pairs);
// PickShardArgmax: max_values [shards, rows] float32, argmax [shards, rows] int32, token_ids
// [rows] int32, shard_cols > 0.
void CheckPickShardArgmaxArgs(const Device* device, const Tensor& max_values, const Tensor& argmax,
                              int64_t shard_cols, const Tensor& token_ids);
// FillPlaceholders: token_ids [n] int32, fills [num_fills, 2] int32, sampled [m] int32.
void CheckFillPlaceholdersArgs(const Device* device, const Tensor& token_ids, const Tensor& fills,
                               const Tensor& sampled);
// Cast: in and out on `device`, the same shape.
void CheckCastArgs(const Device* device, const Tensor& in, const Tensor& out);

}  // namespace pagedllm::kernels
