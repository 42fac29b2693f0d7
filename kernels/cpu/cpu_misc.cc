// Row copies and conversions: Embedding, GatherRows and Cast.
#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/half_conversion.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/op_checks.h"

namespace pagedllm::kernels::cpu {
namespace {

// Element i of a float32, bfloat16 or float16 array, as float.
float LoadFloat(const void* data, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::kFloat32:
      return static_cast<const float*>(data)[i];
    case DType::kBFloat16:
      return BFloat16ToFloat(static_cast<const uint16_t*>(data)[i]);
    case DType::kFloat16:
      return HalfToFloat(static_cast<const uint16_t*>(data)[i]);
    case DType::kInt32:
      break;
  }
  PAGEDLLM_CHECK(false, "LoadFloat: not a float dtype: ", DTypeName(dtype));
}

void StoreFloat(float value, DType dtype, void* data, int64_t i) {
  switch (dtype) {
    case DType::kFloat32:
      static_cast<float*>(data)[i] = value;
      return;
    case DType::kBFloat16:
      static_cast<uint16_t*>(data)[i] = FloatToBFloat16(value);
      return;
    case DType::kFloat16:
      static_cast<uint16_t*>(data)[i] = FloatToHalf(value);
      return;
    case DType::kInt32:
      break;
  }
  PAGEDLLM_CHECK(false, "StoreFloat: not a float dtype: ", DTypeName(dtype));
}

}  // namespace

// token_ids: [n] int32, table: [vocab_local, hidden] holding ids
// [vocab_begin, vocab_begin + vocab_local), out: [n, hidden] (same dtype as table).
void CpuOps::Embedding(const Tensor& token_ids, const Tensor& table, int64_t vocab_begin,
                       const Tensor& out) {
  CheckEmbeddingArgs(device_, token_ids, table, out);
  const int64_t vocab_local = table.dim(0);
  const size_t row_bytes = static_cast<size_t>(table.dim(1)) * DTypeSize(table.dtype());
  const int32_t* ids = token_ids.data<int32_t>();
  const char* table_data = static_cast<const char*>(table.raw_data());
  char* out_data = static_cast<char*>(out.raw_data());
  for (int64_t i = 0; i < token_ids.dim(0); ++i) {
    const int64_t row = static_cast<int64_t>(ids[i]) - vocab_begin;
    if (row >= 0 && row < vocab_local) {
      std::memcpy(out_data + i * row_bytes, table_data + row * row_bytes, row_bytes);
    } else {
      std::memset(out_data + i * row_bytes, 0, row_bytes);  // another rank's share
    }
  }
}

// x: [n, d], indices: [m] int32 in [0, n), out: [m, d] (same dtype as x).
void CpuOps::GatherRows(const Tensor& x, const Tensor& indices, const Tensor& out) {
  CheckGatherRowsArgs(device_, x, indices, out);
  const int64_t n = x.dim(0);
  const size_t row_bytes = static_cast<size_t>(x.dim(1)) * DTypeSize(x.dtype());
  const int32_t* index = indices.data<int32_t>();
  const char* x_data = static_cast<const char*>(x.raw_data());
  char* out_data = static_cast<char*>(out.raw_data());
  for (int64_t i = 0; i < indices.dim(0); ++i) {
    PAGEDLLM_CHECK(index[i] >= 0 && index[i] < n, "GatherRows: indices[", i, "] = ", index[i],
                   " is outside x's ", n, " rows (x ", x.ShapeString(), ")");
    std::memcpy(out_data + i * row_bytes, x_data + index[i] * row_bytes, row_bytes);
  }
}

void CpuOps::ArgmaxRows(const Tensor& logits, int64_t num_valid_cols, const Tensor& max_values,
                        const Tensor& argmax) {
  constexpr const char* kOp = "ArgmaxRows";
  CheckTensor(kOp, "logits", logits, device_, DType::kFloat32);
  CheckTensor(kOp, "max_values", max_values, device_, DType::kFloat32);
  CheckTensor(kOp, "argmax", argmax, device_, DType::kInt32);
  CheckRank(kOp, "logits", logits, 2);
  PAGEDLLM_CHECK(
      max_values.numel() == logits.dim(0) && argmax.numel() == logits.dim(0), kOp,
      ": want logits: [rows, cols], max_values and argmax: [rows] (",
      DescribeTensors({{"logits", &logits}, {"max_values", &max_values}, {"argmax", &argmax}}),
      ")");
  const int64_t rows = logits.dim(0), cols = logits.dim(1);
  const int64_t valid = std::min(num_valid_cols, cols);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = logits.data<float>() + r * cols;
    float best = -std::numeric_limits<float>::infinity();
    int32_t best_col = 0;
    for (int64_t c = 0; c < valid; ++c) {
      if (row[c] > best) {  // NaN never compares greater; the first maximum wins ties
        best = row[c];
        best_col = static_cast<int32_t>(c);
      }
    }
    max_values.data<float>()[r] = best;
    argmax.data<int32_t>()[r] = best_col;
  }
}

void CpuOps::PickShardArgmax(const Tensor& max_values, const Tensor& argmax, int64_t shard_cols,
                             const Tensor& token_ids) {
  CheckPickShardArgmaxArgs(device_, max_values, argmax, shard_cols, token_ids);
  const int64_t shards = max_values.dim(0), rows = max_values.dim(1);
  for (int64_t p = 0; p < rows; ++p) {
    int64_t best = 0;
    for (int64_t r = 1; r < shards; ++r) {
      // Strictly larger to move on: ties keep the lower shard, so the lower id.
      if (max_values.data<float>()[r * rows + p] > max_values.data<float>()[best * rows + p]) {
        best = r;
      }
    }
    token_ids.data<int32_t>()[p] =
        static_cast<int32_t>(argmax.data<int32_t>()[best * rows + p] + best * shard_cols);
  }
}

void CpuOps::FillPlaceholders(const Tensor& token_ids, const Tensor& fills, const Tensor& sampled) {
  constexpr const char* kOp = "FillPlaceholders";
  CheckFillPlaceholdersArgs(device_, token_ids, fills, sampled);
  const int32_t* pairs = fills.data<int32_t>();
  for (int64_t f = 0; f < fills.dim(0); ++f) {
    const int32_t to = pairs[2 * f], from = pairs[2 * f + 1];
    PAGEDLLM_CHECK(to >= 0 && to < token_ids.dim(0) && from >= 0 && from < sampled.dim(0), kOp,
                   ": fill ", f, " (", to, " <- ", from, ") is outside token_ids [",
                   token_ids.dim(0), "] or sampled [", sampled.dim(0), "]");
    token_ids.data<int32_t>()[to] = sampled.data<int32_t>()[from];
  }
}

// in, out: the same shape; float32, bfloat16 and float16 convert to each other (rounding to
// nearest even), and any dtype copies to itself.
void CpuOps::Cast(const Tensor& in, const Tensor& out) {
  constexpr const char* kOp = "Cast";
  CheckCastArgs(device_, in, out);
  if (in.dtype() == out.dtype()) {
    if (in.raw_data() != out.raw_data()) std::memmove(out.raw_data(), in.raw_data(), in.bytes());
    return;
  }
  PAGEDLLM_CHECK(in.dtype() != DType::kInt32 && out.dtype() != DType::kInt32, kOp,
                 ": only float dtypes convert (", DescribeTensors({{"in", &in}, {"out", &out}}),
                 ")");
  const void* src = in.raw_data();
  void* dst = out.raw_data();
  const DType from = in.dtype(), to = out.dtype();
  pool_->ParallelForRange(in.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) StoreFloat(LoadFloat(src, from, i), to, dst, i);
  });
}

}  // namespace pagedllm::kernels::cpu
