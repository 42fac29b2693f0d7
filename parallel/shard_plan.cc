#include "parallel/shard_plan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace pagedllm::parallel {
namespace {

absl::Status NotDivisible(const char* name, int64_t value, int tp) {
  return absl::InvalidArgumentError(
      absl::StrCat(name, " (", value, ") is not divisible by tp (", tp, ")"));
}

}  // namespace

absl::StatusOr<ShardPlan> MakeShardPlan(const ModelDims& dims, int rank, int world_size) {
  if (world_size <= 0 || rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " is not in [0, tp) for tp (", world_size, ")"));
  }
  const std::pair<const char*, int64_t> sizes[] = {
      {"hidden_size", dims.hidden},
      {"intermediate_size", dims.intermediate},
      {"num_attention_heads", dims.num_heads},
      {"num_key_value_heads", dims.num_kv_heads},
      {"head_dim", dims.head_dim},
      {"vocab_size", dims.vocab},
  };
  for (const auto& [name, value] : sizes) {
    if (value <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(name, " (", value, ") must be positive"));
    }
  }
  const int tp = world_size;
  if (dims.num_heads % tp != 0) return NotDivisible("num_attention_heads", dims.num_heads, tp);
  if (dims.num_heads % dims.num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("num_attention_heads (", dims.num_heads,
                                                   ") is not a multiple of num_key_value_heads (",
                                                   dims.num_kv_heads, ")"));
  }
  if (dims.intermediate % tp != 0) return NotDivisible("intermediate_size", dims.intermediate, tp);

  ShardPlan plan;
  plan.rank = rank;
  plan.world_size = tp;
  plan.heads_local = dims.num_heads / tp;
  plan.head_begin = rank * plan.heads_local;
  if (dims.num_kv_heads >= tp) {
    if (dims.num_kv_heads % tp != 0)
      return NotDivisible("num_key_value_heads", dims.num_kv_heads, tp);
    plan.kv_heads_local = dims.num_kv_heads / tp;
    plan.kv_head_begin = rank * plan.kv_heads_local;
    plan.kv_replicas = 1;
  } else {
    if (tp % dims.num_kv_heads != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tp (", tp, ") is not a multiple of num_key_value_heads (",
                       dims.num_kv_heads, "), so KV heads cannot be replicated evenly"));
    }
    plan.kv_replicas = tp / dims.num_kv_heads;
    plan.kv_heads_local = 1;
    plan.kv_head_begin = rank / plan.kv_replicas;
  }
  plan.intermediate_local = dims.intermediate / tp;
  plan.intermediate_begin = rank * plan.intermediate_local;
  plan.vocab_local = (dims.vocab + tp - 1) / tp;
  plan.vocab_begin = std::min(dims.vocab, rank * plan.vocab_local);
  plan.vocab_end = std::min(dims.vocab, (rank + 1) * plan.vocab_local);
  return plan;
}

std::string ShardPlan::DebugString() const {
  return absl::StrCat("rank ", rank, "/", world_size, ": heads [", head_begin, ", ",
                      head_begin + heads_local, "), kv heads [", kv_head_begin, ", ",
                      kv_head_begin + kv_heads_local, ") x", kv_replicas, ", intermediate [",
                      intermediate_begin, ", ", intermediate_begin + intermediate_local,
                      "), vocab [", vocab_begin, ", ", vocab_end, ") of ", vocab_local, " rows");
}

}  // namespace pagedllm::parallel
