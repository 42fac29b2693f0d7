// Cuts one tensor-parallel rank's Megatron shard of a Llama checkpoint into host memory.
//
// Column-parallel (rows of the HF [out, in] weight): q/k/v fused into qkv, gate/up fused into
// gate_up. Row-parallel (columns): o_proj, down_proj. Vocab-parallel (rows): embedding, LM head.
// Tensors keep the checkpoint's dtype; nothing is converted. Fused tensors need their parts to
// share a dtype.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "parallel/shard_plan.h"
#include "worker/weights/checkpoint.h"
#include "worker/weights/model_config.h"
#include "worker/weights/safetensors.h"

namespace pagedllm::worker {

// A dense row-major tensor in host memory. Owns its bytes.
struct HostTensor {
  WeightDType dtype = WeightDType::kF32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // numel() * WeightDTypeSize(dtype), little-endian elements

  int64_t numel() const;
};

struct LlamaLayerShard {
  HostTensor input_norm;  // [hidden]
  HostTensor qkv;         // [(heads_local + 2 * kv_heads_local) * head_dim, hidden]: q, k, v rows
  HostTensor o_proj;      // [hidden, heads_local * head_dim]
  HostTensor post_norm;   // [hidden]
  HostTensor gate_up;     // [2 * intermediate_local, hidden]: gate rows, then up rows
  HostTensor down;        // [hidden, intermediate_local]
};

struct LlamaShardWeights {
  HostTensor embed;  // [vocab_local, hidden]: token ids [vocab_begin, vocab_end), then zero rows
  std::vector<LlamaLayerShard> layers;  // num_hidden_layers
  HostTensor final_norm;                // [hidden]
  HostTensor lm_head;                   // [vocab_local, hidden]: as embed (embed's rows when tied)
};

// The whole shard of `plan.rank`. Every tensor's shape is checked against `config`; errors name
// the file, the tensor, its shape and the expected one.
absl::StatusOr<LlamaShardWeights> LoadLlamaShard(const Checkpoint& checkpoint,
                                                 const LlamaConfig& config,
                                                 const parallel::ShardPlan& plan);

// One layer's shard, for callers that upload layer by layer to bound host memory.
absl::StatusOr<LlamaLayerShard> LoadLlamaLayerShard(const Checkpoint& checkpoint,
                                                    const LlamaConfig& config,
                                                    const parallel::ShardPlan& plan, int64_t layer);

// The embedding and LM head shards ([vocab_local, hidden] each) and the final norm ([hidden]).
absl::Status LoadLlamaEmbeddingShards(const Checkpoint& checkpoint, const LlamaConfig& config,
                                      const parallel::ShardPlan& plan, HostTensor* embed,
                                      HostTensor* lm_head, HostTensor* final_norm);

}  // namespace pagedllm::worker
