#include "worker/model/model_loader.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status.h"
#include "parallel/shard_plan.h"
#include "worker/weights/checkpoint.h"
#include "worker/weights/llama_weights.h"
#include "worker/weights/model_config.h"

namespace pagedllm::worker {

namespace {

using kernels::DType;
using kernels::Tensor;

DType FromWeightDType(WeightDType dtype) {
  switch (dtype) {
    case WeightDType::kF32: return DType::kFloat32;
    case WeightDType::kBF16: return DType::kBFloat16;
    case WeightDType::kF16: return DType::kFloat16;
  }
  return DType::kFloat32;
}

// Copies a host tensor to the device and converts it to `dtype`.
absl::StatusOr<Tensor> Upload(kernels::Device& device, const HostTensor& host, DType dtype) {
  PAGEDLLM_ASSIGN_OR_RETURN(Tensor raw, device.Allocate(FromWeightDType(host.dtype), host.shape));
  device.CopyHostToDevice(raw.raw_data(), host.bytes.data(), host.bytes.size());
  if (raw.dtype() == dtype) return raw;
  PAGEDLLM_ASSIGN_OR_RETURN(Tensor converted, device.Allocate(dtype, host.shape));
  device.ops().Cast(raw, converted);
  device.Synchronize();  // `raw` is freed on return
  return converted;
}

int64_t CountParameters(const LlamaConfig& c) {
  const int64_t attention =
      c.hidden_size * c.head_dim * (c.num_attention_heads * 2 + c.num_key_value_heads * 2);
  const int64_t mlp = 3 * c.hidden_size * c.intermediate_size;
  const int64_t per_layer = attention + mlp + 2 * c.hidden_size;
  const int64_t embeddings = c.vocab_size * c.hidden_size * (c.tie_word_embeddings ? 1 : 2);
  return c.num_hidden_layers * per_layer + embeddings + c.hidden_size;
}

std::string BaseName(const std::string& path) {
  std::string trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  const size_t slash = trimmed.rfind('/');
  return slash == std::string::npos ? trimmed : trimmed.substr(slash + 1);
}

}  // namespace

absl::StatusOr<LoadedModel> LoadLlamaModel(const std::string& model_dir, kernels::Device& device,
                                           parallel::Communicator& comm) {
  PAGEDLLM_ASSIGN_OR_RETURN(LlamaConfig config, LoadLlamaConfig(model_dir));
  PAGEDLLM_ASSIGN_OR_RETURN(parallel::ShardPlan plan,
                            parallel::MakeShardPlan(ModelDimsOf(config), comm.rank(),
                                                    comm.world_size()));
  PAGEDLLM_ASSIGN_OR_RETURN(Checkpoint checkpoint, Checkpoint::Open(model_dir));

  DType dtype = DType::kFloat32;
  if (device.type() == kernels::DeviceType::kCuda) {
    dtype = config.torch_dtype == "float16" ? DType::kFloat16 : DType::kBFloat16;
  }

  LlamaWeights weights;
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    PAGEDLLM_ASSIGN_OR_RETURN(LlamaLayerShard shard,
                              LoadLlamaLayerShard(checkpoint, config, plan, layer));
    LlamaLayerWeights w;
    PAGEDLLM_ASSIGN_OR_RETURN(w.input_norm, Upload(device, shard.input_norm, dtype));
    PAGEDLLM_ASSIGN_OR_RETURN(w.qkv, Upload(device, shard.qkv, dtype));
    PAGEDLLM_ASSIGN_OR_RETURN(w.o_proj, Upload(device, shard.o_proj, dtype));
    PAGEDLLM_ASSIGN_OR_RETURN(w.post_norm, Upload(device, shard.post_norm, dtype));
    PAGEDLLM_ASSIGN_OR_RETURN(w.gate_up, Upload(device, shard.gate_up, dtype));
    PAGEDLLM_ASSIGN_OR_RETURN(w.down, Upload(device, shard.down, dtype));
    weights.layers.push_back(std::move(w));
  }
  {
    HostTensor embed, lm_head, final_norm;
    PAGEDLLM_RETURN_IF_ERROR(
        LoadLlamaEmbeddingShards(checkpoint, config, plan, &embed, &lm_head, &final_norm));
    PAGEDLLM_ASSIGN_OR_RETURN(weights.embed, Upload(device, embed, dtype));
    PAGEDLLM_ASSIGN_OR_RETURN(weights.lm_head, Upload(device, lm_head, dtype));
    PAGEDLLM_ASSIGN_OR_RETURN(weights.final_norm, Upload(device, final_norm, dtype));
  }
  const std::vector<float> inv_freq = RopeInvFreq(config);
  PAGEDLLM_ASSIGN_OR_RETURN(
      weights.inv_freq,
      device.FromHost(DType::kFloat32, {static_cast<int64_t>(inv_freq.size())}, inv_freq));

  LlamaDims dims;
  dims.hidden = config.hidden_size;
  dims.intermediate_local = plan.intermediate_local;
  dims.num_heads_local = plan.heads_local;
  dims.num_kv_heads_local = plan.kv_heads_local;
  dims.head_dim = config.head_dim;
  dims.num_layers = config.num_hidden_layers;
  dims.vocab_size = config.vocab_size;
  dims.vocab_begin = plan.vocab_begin;
  dims.vocab_local = plan.vocab_local;
  dims.rms_norm_eps = static_cast<float>(config.rms_norm_eps);

  LoadedModel loaded;
  loaded.model = std::make_unique<LlamaModel>(&device, &comm, dims, std::move(weights));
  loaded.cache_dtype = dtype;
  loaded.num_layers = static_cast<int>(config.num_hidden_layers);
  loaded.num_kv_heads_local = static_cast<int>(plan.kv_heads_local);
  loaded.head_dim = static_cast<int>(config.head_dim);
  loaded.info.set_name(BaseName(model_dir));
  loaded.info.set_vocab_size(static_cast<int32_t>(config.vocab_size));
  loaded.info.set_max_position_embeddings(static_cast<int32_t>(config.max_position_embeddings));
  for (int64_t eos : config.eos_token_ids) loaded.info.add_eos_token_ids(static_cast<int32_t>(eos));
  loaded.info.set_bos_token_id(static_cast<int32_t>(config.bos_token_id));
  loaded.info.set_num_layers(static_cast<int32_t>(config.num_hidden_layers));
  loaded.info.set_num_parameters(CountParameters(config));
  PAGEDLLM_LOG(INFO) << "loaded " << model_dir << " shard " << plan.DebugString() << " as "
                     << kernels::DTypeName(dtype) << " on " << device.name();
  return loaded;
}

}  // namespace pagedllm::worker
