#include "kernels/op_checks.h"

#include "absl/strings/str_cat.h"
#include "kernels/device.h"

namespace pagedllm::kernels {

std::string DescribeTensors(std::initializer_list<std::pair<const char*, const Tensor*>> tensors) {
  std::string text;
  for (const auto& [name, tensor] : tensors) {
    absl::StrAppend(&text, text.empty() ? "" : ", ", name, " ", tensor->ShapeString());
  }
  return text;
}

void CheckOnDevice(const char* op, const char* name, const Tensor& tensor, const Device* device) {
  PAGEDLLM_CHECK(!tensor.empty(), op, ": ", name, " is an empty tensor");
  PAGEDLLM_CHECK(tensor.device() == device, op, ": ", name, " ", tensor.ShapeString(),
                 " lives on a ", tensor.device()->name(), " device other than the ops' own ",
                 device->name(), " device (allocate it from the device whose ops() you call)");
}

void CheckTensor(const char* op, const char* name, const Tensor& tensor, const Device* device,
                 DType dtype) {
  CheckOnDevice(op, name, tensor, device);
  PAGEDLLM_CHECK(tensor.dtype() == dtype, op, ": ", name, " must be ", DTypeName(dtype), ", got ",
                 tensor.ShapeString());
}

void CheckRank(const char* op, const char* name, const Tensor& tensor, int rank) {
  PAGEDLLM_CHECK(tensor.rank() == rank, op, ": ", name, " must have rank ", rank, ", got ",
                 tensor.ShapeString());
}

// Whole-op argument checks (shapes, dtypes, devices), shared by the CPU and CUDA backends so both
// accept exactly the same calls and name the same problems.

void CheckEmbeddingArgs(const Device* device, const Tensor& token_ids, const Tensor& table,
                        const Tensor& out) {
  constexpr const char* kOp = "Embedding";
  CheckTensor(kOp, "token_ids", token_ids, device, DType::kInt32);
  CheckOnDevice(kOp, "table", table, device);
  CheckTensor(kOp, "out", out, device, table.dtype());
  CheckRank(kOp, "token_ids", token_ids, 1);
  CheckRank(kOp, "table", table, 2);
  CheckRank(kOp, "out", out, 2);
  PAGEDLLM_CHECK(out.dim(0) == token_ids.dim(0) && out.dim(1) == table.dim(1), kOp,
                 ": want token_ids: [n], table: [vocab_local, hidden], out: [n, hidden] (",
                 DescribeTensors({{"token_ids", &token_ids}, {"table", &table}, {"out", &out}}),
                 ")");
}

void CheckGatherRowsArgs(const Device* device, const Tensor& x, const Tensor& indices,
                         const Tensor& out) {
  constexpr const char* kOp = "GatherRows";
  CheckOnDevice(kOp, "x", x, device);
  CheckTensor(kOp, "indices", indices, device, DType::kInt32);
  CheckTensor(kOp, "out", out, device, x.dtype());
  CheckRank(kOp, "x", x, 2);
  CheckRank(kOp, "indices", indices, 1);
  CheckRank(kOp, "out", out, 2);
  PAGEDLLM_CHECK(out.dim(0) == indices.dim(0) && out.dim(1) == x.dim(1), kOp,
                 ": want x: [n, d], indices: [m], out: [m, d] (",
                 DescribeTensors({{"x", &x}, {"indices", &indices}, {"out", &out}}), ")");
}

void CheckPickShardArgmaxArgs(const Device* device, const Tensor& max_values, const Tensor& argmax,
                              int64_t shard_cols, const Tensor& token_ids) {
  constexpr const char* kOp = "PickShardArgmax";
  CheckTensor(kOp, "max_values", max_values, device, DType::kFloat32);
  CheckTensor(kOp, "argmax", argmax, device, DType::kInt32);
  CheckTensor(kOp, "token_ids", token_ids, device, DType::kInt32);
  CheckRank(kOp, "max_values", max_values, 2);
  CheckRank(kOp, "argmax", argmax, 2);
  CheckRank(kOp, "token_ids", token_ids, 1);
  PAGEDLLM_CHECK(argmax.shape() == max_values.shape() && token_ids.dim(0) == max_values.dim(1), kOp,
                 ": want max_values and argmax: [shards, rows], token_ids: [rows] (",
                 DescribeTensors(
                     {{"max_values", &max_values}, {"argmax", &argmax}, {"token_ids", &token_ids}}),
                 ")");
  PAGEDLLM_CHECK(shard_cols > 0, kOp, ": shard_cols must be positive, got ", shard_cols);
}

void CheckFillPlaceholdersArgs(const Device* device, const Tensor& token_ids, const Tensor& fills,
                               const Tensor& sampled) {
  constexpr const char* kOp = "FillPlaceholders";
  CheckTensor(kOp, "token_ids", token_ids, device, DType::kInt32);
  CheckTensor(kOp, "fills", fills, device, DType::kInt32);
  CheckTensor(kOp, "sampled", sampled, device, DType::kInt32);
  CheckRank(kOp, "token_ids", token_ids, 1);
  CheckRank(kOp, "fills", fills, 2);
  CheckRank(kOp, "sampled", sampled, 1);
  PAGEDLLM_CHECK(fills.dim(1) == 2, kOp, ": want fills: [num_fills, 2] (",
                 DescribeTensors({{"fills", &fills}}), ")");
}

void CheckWriteKvCacheArgs(const Device* device, const Tensor& key, const Tensor& value,
                           const Tensor& slot_mapping, const Tensor& key_cache,
                           const Tensor& value_cache) {
  constexpr const char* kOp = "WriteKvCache";
  CheckOnDevice(kOp, "key", key, device);
  CheckOnDevice(kOp, "value", value, device);
  CheckTensor(kOp, "slot_mapping", slot_mapping, device, DType::kInt32);
  CheckOnDevice(kOp, "key_cache", key_cache, device);
  CheckOnDevice(kOp, "value_cache", value_cache, device);
  CheckRank(kOp, "key", key, 3);
  CheckRank(kOp, "slot_mapping", slot_mapping, 1);
  CheckRank(kOp, "key_cache", key_cache, 4);
  const auto shapes = [&] {
    return DescribeTensors({{"key", &key},
                            {"value", &value},
                            {"slot_mapping", &slot_mapping},
                            {"key_cache", &key_cache},
                            {"value_cache", &value_cache}});
  };
  const int64_t n = key.dim(0);
  PAGEDLLM_CHECK(value.shape() == key.shape() && slot_mapping.dim(0) == n &&
                     value_cache.shape() == key_cache.shape() && key_cache.dim(2) == key.dim(1) &&
                     key_cache.dim(3) == key.dim(2),
                 kOp, ": want key, value: [n, num_kv_heads, head_dim], slot_mapping: [n], caches: ",
                 "[num_blocks, block_size, num_kv_heads, head_dim] (", shapes(), ")");
  PAGEDLLM_CHECK(value.dtype() == key.dtype() && key_cache.dtype() == key.dtype() &&
                     value_cache.dtype() == key.dtype(),
                 kOp, ": dtypes differ (", shapes(), ")");
}

void CheckRopeQkvArgs(const Device* device, const RopeQkvParams& p, DType dtype) {
  constexpr const char* kOp = "RopeQkv";
  CheckTensor(kOp, "qkv", p.qkv, device, dtype);
  CheckTensor(kOp, "positions", p.positions, device, DType::kInt32);
  CheckTensor(kOp, "inv_freq", p.inv_freq, device, DType::kFloat32);
  CheckTensor(kOp, "query", p.query, device, dtype);
  CheckTensor(kOp, "key", p.key, device, dtype);
  CheckTensor(kOp, "value", p.value, device, dtype);
  CheckRank(kOp, "qkv", p.qkv, 2);
  CheckRank(kOp, "positions", p.positions, 1);
  CheckRank(kOp, "inv_freq", p.inv_freq, 1);
  CheckRank(kOp, "query", p.query, 3);
  CheckRank(kOp, "key", p.key, 3);
  CheckRank(kOp, "value", p.value, 3);
  const int64_t num_tokens = p.qkv.dim(0);
  const int64_t num_heads = p.query.dim(1), num_kv_heads = p.key.dim(1);
  const int64_t head_dim = p.query.dim(2);
  const auto shapes = [&] {
    return DescribeTensors({{"qkv", &p.qkv},
                            {"positions", &p.positions},
                            {"inv_freq", &p.inv_freq},
                            {"query", &p.query},
                            {"key", &p.key},
                            {"value", &p.value}});
  };
  PAGEDLLM_CHECK(head_dim % 2 == 0 && p.inv_freq.dim(0) == head_dim / 2, kOp,
                 ": want an even head_dim and inv_freq: [head_dim / 2] (", shapes(), ")");
  PAGEDLLM_CHECK(p.positions.dim(0) == num_tokens && p.query.dim(0) == num_tokens &&
                     p.key.shape() == p.value.shape() && p.key.dim(0) == num_tokens &&
                     p.key.dim(2) == head_dim,
                 kOp, ": want query: [num_tokens, num_heads, head_dim], key and value: ",
                 "[num_tokens, num_kv_heads, head_dim] (", shapes(), ")");
  PAGEDLLM_CHECK(p.qkv.dim(1) == (num_heads + 2 * num_kv_heads) * head_dim, kOp,
                 ": want qkv: [num_tokens, (num_heads + 2 * num_kv_heads) * head_dim] = [",
                 num_tokens, ", ", (num_heads + 2 * num_kv_heads) * head_dim, "] (", shapes(), ")");
}

size_t CheckCopyBlocksArgs(const Device* device, const Tensor& cache, const Tensor& pairs) {
  constexpr const char* kOp = "CopyBlocks";
  CheckOnDevice(kOp, "cache", cache, device);
  CheckTensor(kOp, "pairs", pairs, device, DType::kInt32);
  PAGEDLLM_CHECK(cache.rank() >= 1, kOp, ": cache must be [num_blocks, ...], got ",
                 cache.ShapeString());
  PAGEDLLM_CHECK(pairs.rank() == 2 && pairs.dim(1) == 2, kOp, ": pairs must be [num_pairs, 2], ",
                 "got ", pairs.ShapeString());
  return cache.dim(0) == 0 ? 0 : cache.bytes() / static_cast<size_t>(cache.dim(0));
}

void CheckCastArgs(const Device* device, const Tensor& in, const Tensor& out) {
  constexpr const char* kOp = "Cast";
  CheckOnDevice(kOp, "in", in, device);
  CheckOnDevice(kOp, "out", out, device);
  PAGEDLLM_CHECK(in.shape() == out.shape(), kOp, ": shapes differ (",
                 DescribeTensors({{"in", &in}, {"out", &out}}), ")");
}

}  // namespace pagedllm::kernels
