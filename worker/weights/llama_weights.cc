#include "worker/weights/llama_weights.h"

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/status.h"

namespace pagedllm::worker {
namespace {

HostTensor Zeros(WeightDType dtype, std::vector<int64_t> shape) {
  HostTensor tensor;
  tensor.dtype = dtype;
  tensor.shape = std::move(shape);
  tensor.bytes.assign(static_cast<size_t>(tensor.numel()) * WeightDTypeSize(dtype), 0);
  return tensor;
}

// The tensor `name`, checked to have `expected` shape.
absl::StatusOr<TensorView> GetShaped(const Checkpoint& checkpoint, const std::string& name,
                                     const std::vector<int64_t>& expected) {
  PAGEDLLM_ASSIGN_OR_RETURN(TensorView view, checkpoint.Get(name));
  if (view.shape != expected) {
    return absl::InvalidArgumentError(absl::StrCat(checkpoint.FileOf(name), ": tensor ", name,
                                                   " has shape ", ShapeString(view.shape),
                                                   ", expected ", ShapeString(expected)));
  }
  return view;
}

absl::Status SameDType(const Checkpoint& checkpoint, const TensorView& a, const TensorView& b) {
  if (a.dtype == b.dtype) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      checkpoint.FileOf(a.name), ": tensor ", a.name, " (", WeightDTypeName(a.dtype), ") and ",
      checkpoint.FileOf(b.name), ": tensor ", b.name, " (", WeightDTypeName(b.dtype),
      ") are fused into one tensor but have different dtypes"));
}

// Copies rows [row_begin, row_begin + rows) of 2-D `src` into 2-D `dst` from row `dst_row` on.
void CopyRows(const TensorView& src, int64_t row_begin, int64_t rows, HostTensor* dst,
              int64_t dst_row) {
  PAGEDLLM_CHECK(src.shape.size() == 2 && dst->shape.size() == 2 && src.shape[1] == dst->shape[1] &&
                     src.dtype == dst->dtype,
                 "CopyRows: ", src.name, " ", ShapeString(src.shape), " into ",
                 ShapeString(dst->shape));
  PAGEDLLM_CHECK(row_begin >= 0 && rows >= 0 && row_begin + rows <= src.shape[0] &&
                     dst_row + rows <= dst->shape[0],
                 "CopyRows: rows [", row_begin, ", ", row_begin + rows, ") of ", src.name,
                 " to row ", dst_row);
  const size_t row_bytes = static_cast<size_t>(src.shape[1]) * WeightDTypeSize(src.dtype);
  if (rows == 0) return;
  std::memcpy(dst->bytes.data() + dst_row * row_bytes, src.data + row_begin * row_bytes,
              rows * row_bytes);
}

// Columns [col_begin, col_begin + cols) of 2-D `src`: [src.shape[0], cols].
HostTensor SliceColumns(const TensorView& src, int64_t col_begin, int64_t cols) {
  PAGEDLLM_CHECK(src.shape.size() == 2 && col_begin >= 0 && col_begin + cols <= src.shape[1],
                 "SliceColumns: columns [", col_begin, ", ", col_begin + cols, ") of ", src.name,
                 " ", ShapeString(src.shape));
  HostTensor dst = Zeros(src.dtype, {src.shape[0], cols});
  const size_t element = WeightDTypeSize(src.dtype);
  const size_t src_row_bytes = static_cast<size_t>(src.shape[1]) * element;
  const size_t dst_row_bytes = static_cast<size_t>(cols) * element;
  for (int64_t r = 0; r < src.shape[0]; ++r) {
    std::memcpy(dst.bytes.data() + r * dst_row_bytes,
                src.data + r * src_row_bytes + col_begin * element, dst_row_bytes);
  }
  return dst;
}

HostTensor Whole(const TensorView& src) {
  HostTensor dst;
  dst.dtype = src.dtype;
  dst.shape = src.shape;
  dst.bytes.assign(src.data, src.data + src.bytes);
  return dst;
}

// The plan must describe this config (made from ModelDimsOf(config)).
absl::Status CheckPlan(const LlamaConfig& config, const parallel::ShardPlan& plan) {
  const bool fits = plan.heads_local > 0 &&
                    plan.head_begin + plan.heads_local <= config.num_attention_heads &&
                    plan.kv_heads_local > 0 &&
                    plan.kv_head_begin + plan.kv_heads_local <= config.num_key_value_heads &&
                    plan.intermediate_local > 0 &&
                    plan.intermediate_begin + plan.intermediate_local <= config.intermediate_size &&
                    plan.vocab_begin <= plan.vocab_end && plan.vocab_end <= config.vocab_size &&
                    plan.vocab_end - plan.vocab_begin <= plan.vocab_local;
  if (fits) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("shard plan (", plan.DebugString(), ") does not fit the model config"));
}

// [vocab_local, hidden] rows [vocab_begin, vocab_end) of `name`, zero padded.
absl::StatusOr<HostTensor> VocabShard(const Checkpoint& checkpoint, const std::string& name,
                                      const LlamaConfig& config, const parallel::ShardPlan& plan) {
  PAGEDLLM_ASSIGN_OR_RETURN(TensorView full,
                            GetShaped(checkpoint, name, {config.vocab_size, config.hidden_size}));
  HostTensor shard = Zeros(full.dtype, {plan.vocab_local, config.hidden_size});
  CopyRows(full, plan.vocab_begin, plan.vocab_end - plan.vocab_begin, &shard, 0);
  return shard;
}

}  // namespace

int64_t HostTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::StatusOr<LlamaLayerShard> LoadLlamaLayerShard(const Checkpoint& checkpoint,
                                                    const LlamaConfig& config,
                                                    const parallel::ShardPlan& plan,
                                                    int64_t layer) {
  PAGEDLLM_RETURN_IF_ERROR(CheckPlan(config, plan));
  if (layer < 0 || layer >= config.num_hidden_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer ", layer, " is not in [0, ", config.num_hidden_layers, ")"));
  }
  const std::string prefix = absl::StrCat("model.layers.", layer, ".");
  const int64_t hidden = config.hidden_size;
  const int64_t head_dim = config.head_dim;
  const int64_t q_rows = config.num_attention_heads * head_dim;
  const int64_t kv_rows = config.num_key_value_heads * head_dim;
  const int64_t inter = config.intermediate_size;
  LlamaLayerShard shard;

  PAGEDLLM_ASSIGN_OR_RETURN(TensorView input_norm,
                            GetShaped(checkpoint, prefix + "input_layernorm.weight", {hidden}));
  shard.input_norm = Whole(input_norm);
  PAGEDLLM_ASSIGN_OR_RETURN(
      TensorView post_norm,
      GetShaped(checkpoint, prefix + "post_attention_layernorm.weight", {hidden}));
  shard.post_norm = Whole(post_norm);

  // qkv: [(heads_local + 2 * kv_heads_local) * head_dim, hidden]
  PAGEDLLM_ASSIGN_OR_RETURN(
      TensorView q, GetShaped(checkpoint, prefix + "self_attn.q_proj.weight", {q_rows, hidden}));
  PAGEDLLM_ASSIGN_OR_RETURN(
      TensorView k, GetShaped(checkpoint, prefix + "self_attn.k_proj.weight", {kv_rows, hidden}));
  PAGEDLLM_ASSIGN_OR_RETURN(
      TensorView v, GetShaped(checkpoint, prefix + "self_attn.v_proj.weight", {kv_rows, hidden}));
  PAGEDLLM_RETURN_IF_ERROR(SameDType(checkpoint, q, k));
  PAGEDLLM_RETURN_IF_ERROR(SameDType(checkpoint, q, v));
  const int64_t q_rows_local = plan.heads_local * head_dim;
  const int64_t kv_rows_local = plan.kv_heads_local * head_dim;
  shard.qkv = Zeros(q.dtype, {q_rows_local + 2 * kv_rows_local, hidden});
  CopyRows(q, plan.head_begin * head_dim, q_rows_local, &shard.qkv, 0);
  CopyRows(k, plan.kv_head_begin * head_dim, kv_rows_local, &shard.qkv, q_rows_local);
  CopyRows(v, plan.kv_head_begin * head_dim, kv_rows_local, &shard.qkv,
           q_rows_local + kv_rows_local);

  // o_proj: [hidden, heads_local * head_dim], this rank's input columns.
  PAGEDLLM_ASSIGN_OR_RETURN(
      TensorView o, GetShaped(checkpoint, prefix + "self_attn.o_proj.weight", {hidden, q_rows}));
  shard.o_proj = SliceColumns(o, plan.head_begin * head_dim, q_rows_local);

  // gate_up: [2 * intermediate_local, hidden]
  PAGEDLLM_ASSIGN_OR_RETURN(
      TensorView gate, GetShaped(checkpoint, prefix + "mlp.gate_proj.weight", {inter, hidden}));
  PAGEDLLM_ASSIGN_OR_RETURN(TensorView up,
                            GetShaped(checkpoint, prefix + "mlp.up_proj.weight", {inter, hidden}));
  PAGEDLLM_RETURN_IF_ERROR(SameDType(checkpoint, gate, up));
  shard.gate_up = Zeros(gate.dtype, {2 * plan.intermediate_local, hidden});
  CopyRows(gate, plan.intermediate_begin, plan.intermediate_local, &shard.gate_up, 0);
  CopyRows(up, plan.intermediate_begin, plan.intermediate_local, &shard.gate_up,
           plan.intermediate_local);

  // down: [hidden, intermediate_local], this rank's input columns.
  PAGEDLLM_ASSIGN_OR_RETURN(
      TensorView down, GetShaped(checkpoint, prefix + "mlp.down_proj.weight", {hidden, inter}));
  shard.down = SliceColumns(down, plan.intermediate_begin, plan.intermediate_local);
  return shard;
}

absl::Status LoadLlamaEmbeddingShards(const Checkpoint& checkpoint, const LlamaConfig& config,
                                      const parallel::ShardPlan& plan, HostTensor* embed,
                                      HostTensor* lm_head, HostTensor* final_norm) {
  PAGEDLLM_RETURN_IF_ERROR(CheckPlan(config, plan));
  constexpr char kEmbed[] = "model.embed_tokens.weight";
  constexpr char kLmHead[] = "lm_head.weight";
  PAGEDLLM_ASSIGN_OR_RETURN(*embed, VocabShard(checkpoint, kEmbed, config, plan));
  if (config.tie_word_embeddings) {
    *lm_head = *embed;
  } else if (checkpoint.Has(kLmHead)) {
    PAGEDLLM_ASSIGN_OR_RETURN(*lm_head, VocabShard(checkpoint, kLmHead, config, plan));
  } else {
    return absl::NotFoundError(absl::StrCat("model dir ", checkpoint.dir(), ": tensor ", kLmHead,
                                            " not found and tie_word_embeddings is false"));
  }
  PAGEDLLM_ASSIGN_OR_RETURN(TensorView norm,
                            GetShaped(checkpoint, "model.norm.weight", {config.hidden_size}));
  *final_norm = Whole(norm);
  return absl::OkStatus();
}

absl::StatusOr<LlamaShardWeights> LoadLlamaShard(const Checkpoint& checkpoint,
                                                 const LlamaConfig& config,
                                                 const parallel::ShardPlan& plan) {
  LlamaShardWeights weights;
  PAGEDLLM_RETURN_IF_ERROR(LoadLlamaEmbeddingShards(checkpoint, config, plan, &weights.embed,
                                                    &weights.lm_head, &weights.final_norm));
  weights.layers.reserve(static_cast<size_t>(config.num_hidden_layers));
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    PAGEDLLM_ASSIGN_OR_RETURN(LlamaLayerShard shard,
                              LoadLlamaLayerShard(checkpoint, config, plan, layer));
    weights.layers.push_back(std::move(shard));
  }
  return weights;
}

}  // namespace pagedllm::worker
