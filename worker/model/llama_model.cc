#include "worker/model/llama_model.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/status.h"

namespace pagedllm::worker {

using kernels::Tensor;

LlamaModel::LlamaModel(kernels::Device* device, parallel::Communicator* comm, LlamaDims dims,
                       LlamaWeights weights)
    : device_(device),
      ops_(device->ops()),
      comm_(comm),
      dims_(dims),
      weights_(std::move(weights)),
      compute_dtype_(weights_.embed.dtype()) {
  PAGEDLLM_CHECK(static_cast<int64_t>(weights_.layers.size()) == dims_.num_layers, "model has ",
                 weights_.layers.size(), " layers of weights, dims say ", dims_.num_layers);
}

absl::StatusOr<Tensor> LlamaModel::Forward(const ForwardBatch& batch, KvCache& cache) {
  const int64_t num_tokens = batch.token_ids.dim(0);
  const int64_t hidden = dims_.hidden;
  PAGEDLLM_ASSIGN_OR_RETURN(Tensor residual,
                            device_->Allocate(compute_dtype_, {num_tokens, hidden}));
  PAGEDLLM_ASSIGN_OR_RETURN(Tensor normed, device_->Allocate(compute_dtype_, {num_tokens, hidden}));
  PAGEDLLM_ASSIGN_OR_RETURN(Tensor delta, device_->Allocate(compute_dtype_, {num_tokens, hidden}));

  // Vocab-parallel embedding: each rank fills the rows of its ids, the all-reduce the rest.
  ops_.Embedding(batch.token_ids, weights_.embed, dims_.vocab_begin, residual);
  if (comm_->world_size() > 1) PAGEDLLM_RETURN_IF_ERROR(comm_->AllReduceSum(residual));

  for (int layer = 0; layer < dims_.num_layers; ++layer) {
    const LlamaLayerWeights& w = weights_.layers[layer];
    if (layer == 0) {
      ops_.RmsNorm(residual, w.input_norm, dims_.rms_norm_eps, normed);
    } else {
      // residual += previous MLP output; normed = input_layernorm(residual)
      ops_.AddRmsNorm(delta, residual, w.input_norm, dims_.rms_norm_eps, normed);
    }
    PAGEDLLM_RETURN_IF_ERROR(AttentionBlock(layer, batch, cache, normed, delta));
    ops_.AddRmsNorm(delta, residual, w.post_norm, dims_.rms_norm_eps, normed);
    PAGEDLLM_RETURN_IF_ERROR(MlpBlock(layer, normed, delta));
  }
  ops_.AddRmsNorm(delta, residual, weights_.final_norm, dims_.rms_norm_eps, normed);

  const int64_t num_sampled = batch.sample_rows.empty() ? 0 : batch.sample_rows.dim(0);
  Tensor logits = batch.logits_out;
  if (logits.empty()) {
    PAGEDLLM_ASSIGN_OR_RETURN(logits,
                              device_->Allocate(compute_dtype_, {num_sampled, dims_.vocab_local}));
  } else if (logits.dtype() != compute_dtype_ || logits.rank() != 2 ||
             logits.dim(0) != num_sampled || logits.dim(1) != dims_.vocab_local) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Forward: logits_out is ", logits.ShapeString(), ", the step needs [", num_sampled, ", ",
        dims_.vocab_local, "] ", kernels::DTypeName(compute_dtype_)));
  }
  if (num_sampled == 0) return logits;
  PAGEDLLM_ASSIGN_OR_RETURN(Tensor last_rows,
                            device_->Allocate(compute_dtype_, {num_sampled, hidden}));
  ops_.GatherRows(normed, batch.sample_rows, last_rows);
  ops_.Linear(last_rows, weights_.lm_head, logits);
  return logits;
}

absl::Status LlamaModel::AttentionBlock(int layer, const ForwardBatch& batch, KvCache& cache,
                                        const Tensor& normed, const Tensor& out) {
  const LlamaLayerWeights& w = weights_.layers[layer];
  const int64_t num_tokens = normed.dim(0);
  const int64_t heads = dims_.num_heads_local;
  const int64_t kv_heads = dims_.num_kv_heads_local;
  const int64_t head_dim = dims_.head_dim;

  PAGEDLLM_ASSIGN_OR_RETURN(
      Tensor qkv,
      device_->Allocate(compute_dtype_, {num_tokens, (heads + 2 * kv_heads) * head_dim}));
  ops_.Linear(normed, w.qkv, qkv);

  kernels::RopeQkvParams rope;
  rope.qkv = qkv;
  rope.positions = batch.positions;
  rope.inv_freq = weights_.inv_freq;
  PAGEDLLM_ASSIGN_OR_RETURN(rope.query,
                            device_->Allocate(compute_dtype_, {num_tokens, heads, head_dim}));
  PAGEDLLM_ASSIGN_OR_RETURN(rope.key,
                            device_->Allocate(compute_dtype_, {num_tokens, kv_heads, head_dim}));
  PAGEDLLM_ASSIGN_OR_RETURN(rope.value,
                            device_->Allocate(compute_dtype_, {num_tokens, kv_heads, head_dim}));
  ops_.RopeQkv(rope);
  ops_.WriteKvCache(rope.key, rope.value, batch.slot_mapping, cache.key(layer), cache.value(layer));

  kernels::PagedAttentionParams attention;
  attention.query = rope.query;
  attention.key_cache = cache.key(layer);
  attention.value_cache = cache.value(layer);
  attention.block_tables = batch.block_tables;
  attention.query_start = batch.query_start;
  attention.context_lens = batch.context_lens;
  attention.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  attention.max_query_len = batch.max_query_len;
  PAGEDLLM_ASSIGN_OR_RETURN(attention.output,
                            device_->Allocate(compute_dtype_, {num_tokens, heads, head_dim}));
  ops_.PagedAttention(attention);

  // Row-parallel O projection: partial sums over this rank's heads, then all-reduce.
  ops_.Linear(attention.output.Reshape({num_tokens, heads * head_dim}), w.o_proj, out);
  if (comm_->world_size() > 1) PAGEDLLM_RETURN_IF_ERROR(comm_->AllReduceSum(out));
  return absl::OkStatus();
}

absl::Status LlamaModel::MlpBlock(int layer, const Tensor& normed, const Tensor& out) {
  const LlamaLayerWeights& w = weights_.layers[layer];
  const int64_t num_tokens = normed.dim(0);
  const int64_t intermediate = dims_.intermediate_local;
  PAGEDLLM_ASSIGN_OR_RETURN(Tensor gate_up,
                            device_->Allocate(compute_dtype_, {num_tokens, 2 * intermediate}));
  ops_.Linear(normed, w.gate_up, gate_up);
  PAGEDLLM_ASSIGN_OR_RETURN(Tensor activated,
                            device_->Allocate(compute_dtype_, {num_tokens, intermediate}));
  ops_.SiluAndMul(gate_up, activated);
  ops_.Linear(activated, w.down, out);
  if (comm_->world_size() > 1) PAGEDLLM_RETURN_IF_ERROR(comm_->AllReduceSum(out));
  return absl::OkStatus();
}

}  // namespace pagedllm::worker
