// Megatron tensor-parallel shard arithmetic: which heads, KV heads, MLP columns and vocabulary
// rows one rank of a tp group owns. Plain arithmetic on sizes; knows nothing of files or tensors.
//
// Query heads and the intermediate (MLP) dimension are cut into tp contiguous, equal ranges.
// KV heads are cut the same way when there are at least tp of them; with fewer (MQA, small GQA)
// each KV head is replicated on tp / num_kv_heads consecutive ranks:
//
//   num_kv_heads = 2, tp = 4:   rank 0 1 | 2 3
//                               kv head 0 | 1
//
// The vocabulary is cut into tp ranges of vocab_local = ceil(vocab / tp) rows; the last rank's
// range may be short, and its padding rows (past vocab) are zero:
//
//   vocab = 10, tp = 4, vocab_local = 3:   [0, 3) [3, 6) [6, 9) [9, 10)+2 padding rows
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace pagedllm::parallel {

// The model sizes shard planning needs.
struct ModelDims {
  int64_t hidden = 0;
  int64_t intermediate = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab = 0;
};

// What rank `rank` of `world_size` owns. Ranges are [begin, begin + local).
struct ShardPlan {
  int rank = 0;
  int world_size = 1;  // tp
  int64_t heads_local = 0;
  int64_t head_begin = 0;
  int64_t kv_heads_local = 0;  // 1 when KV heads are replicated
  int64_t kv_head_begin = 0;
  int64_t kv_replicas = 1;  // ranks holding each KV head: max(1, tp / num_kv_heads)
  int64_t intermediate_local = 0;
  int64_t intermediate_begin = 0;
  int64_t vocab_begin = 0;  // first token id of this rank's rows
  int64_t vocab_end = 0;    // one past its last real row: vocab_end - vocab_begin <= vocab_local
  int64_t vocab_local = 0;  // rows on every rank, padding included: ceil(vocab / tp)

  std::string DebugString() const;
};

// Errors (InvalidArgument) name the value and tp, e.g.
// "num_attention_heads (8) is not divisible by tp (3)".
absl::StatusOr<ShardPlan> MakeShardPlan(const ModelDims& dims, int rank, int world_size);

}  // namespace pagedllm::parallel
