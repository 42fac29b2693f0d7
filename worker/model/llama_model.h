// The Llama forward pass of one tensor-parallel rank over a paged KV cache.
//
// Megatron sharding: QKV and gate/up are column-parallel (this rank's heads / intermediate
// slice), O and down are row-parallel (partial sums, all-reduced), the embedding and LM head are
// split over the vocabulary. The model owns its device weights; it does not own the device, the
// communicator or the KV cache. Used from the worker's one step thread.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/device.h"
#include "kernels/ops.h"
#include "parallel/communicator.h"
#include "worker/model/kv_cache.h"

namespace pagedllm::worker {

// Sizes as this rank sees them.
struct LlamaDims {
  int64_t hidden = 0;
  int64_t intermediate_local = 0;
  int64_t num_heads_local = 0;
  int64_t num_kv_heads_local = 0;
  int64_t head_dim = 0;
  int64_t num_layers = 0;
  int64_t vocab_size = 0;   // the whole vocabulary
  int64_t vocab_begin = 0;  // first token id of this rank's embedding / LM head rows
  int64_t vocab_local = 0;  // rows of this rank's embedding / LM head (padded: same on all ranks)
  float rms_norm_eps = 1e-5f;
};

struct LlamaLayerWeights {
  kernels::Tensor input_norm;  // [hidden]
  kernels::Tensor qkv;         // [(heads_local + 2 * kv_heads_local) * head_dim, hidden]
  kernels::Tensor o_proj;      // [hidden, heads_local * head_dim]
  kernels::Tensor post_norm;   // [hidden]
  kernels::Tensor gate_up;     // [2 * intermediate_local, hidden]
  kernels::Tensor down;        // [hidden, intermediate_local]
};

struct LlamaWeights {
  kernels::Tensor embed;  // [vocab_local, hidden]
  std::vector<LlamaLayerWeights> layers;
  kernels::Tensor final_norm;  // [hidden]
  kernels::Tensor lm_head;     // [vocab_local, hidden]
  kernels::Tensor inv_freq;    // [head_dim / 2] float32
};

// One step's inputs, on the device. T = tokens this step, S = sequences, P = sampled rows.
struct ForwardBatch {
  kernels::Tensor token_ids;     // [T] int32
  kernels::Tensor positions;     // [T] int32
  kernels::Tensor slot_mapping;  // [T] int32: cache slot each token's K/V is written to
  kernels::Tensor block_tables;  // [S, max_blocks_per_seq] int32
  kernels::Tensor query_start;   // [S + 1] int32
  kernels::Tensor context_lens;  // [S] int32
  kernels::Tensor sample_rows;   // [P] int32: rows of the last token of each sampled sequence
  // When > 0, no sequence has more query tokens (PagedAttentionParams::max_query_len; 0: unknown).
  int32_t max_query_len = 0;
  // Optional: where the logits go ([P, vocab_local] in the compute dtype). Decode graphs of every
  // batch size share one such buffer instead of each holding its own.
  kernels::Tensor logits_out;
};

class LlamaModel {
 public:
  LlamaModel(kernels::Device* device, parallel::Communicator* comm, LlamaDims dims,
             LlamaWeights weights);
  LlamaModel(const LlamaModel&) = delete;
  LlamaModel& operator=(const LlamaModel&) = delete;

  const LlamaDims& dims() const { return dims_; }
  kernels::DType compute_dtype() const { return compute_dtype_; }

  // Runs the batch through every layer, writing this step's K/V into `cache`, and returns this
  // rank's slice of the logits of the sampled rows: [P, vocab_local].
  absl::StatusOr<kernels::Tensor> Forward(const ForwardBatch& batch, KvCache& cache);

 private:
  absl::Status AttentionBlock(int layer, const ForwardBatch& batch, KvCache& cache,
                              const kernels::Tensor& normed, const kernels::Tensor& out);
  absl::Status MlpBlock(int layer, const kernels::Tensor& normed, const kernels::Tensor& out);

  kernels::Device* device_;
  kernels::Ops& ops_;
  parallel::Communicator* comm_;
  LlamaDims dims_;
  LlamaWeights weights_;
  kernels::DType compute_dtype_;
};

}  // namespace pagedllm::worker
