#include "worker/model/model_loader.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
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
    case WeightDType::kF32:
      return DType::kFloat32;
    case WeightDType::kBF16:
      return DType::kBFloat16;
    case WeightDType::kF16:
      return DType::kFloat16;
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

// A device tensor of `shape` in `dtype` filled with values in [center - scale, center + scale]
// from a fixed pseudo-random pattern (the same on every rank and run).
absl::StatusOr<Tensor> DummyTensor(kernels::Device& device, std::vector<int64_t> shape, DType dtype,
                                   float center, float scale) {
  static const std::vector<float> pattern = [] {
    std::vector<float> values(1 << 20);
    uint64_t state = 0x9e3779b97f4a7c15ull;
    for (float& value : values) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      value = static_cast<float>((state >> 40) & 0xffffff) / static_cast<float>(1 << 23) - 1.0f;
    }
    return values;
  }();
  PAGEDLLM_ASSIGN_OR_RETURN(Tensor staging, device.Allocate(DType::kFloat32, shape));
  std::vector<float> chunk(pattern.size());
  for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = center + scale * pattern[i];
  const int64_t numel = staging.numel();
  for (int64_t begin = 0; begin < numel; begin += static_cast<int64_t>(chunk.size())) {
    const int64_t count = std::min<int64_t>(chunk.size(), numel - begin);
    device.CopyHostToDevice(staging.data<float>() + begin, chunk.data(), count * sizeof(float));
  }
  if (dtype == DType::kFloat32) return staging;
  PAGEDLLM_ASSIGN_OR_RETURN(Tensor converted, device.Allocate(dtype, shape));
  device.ops().Cast(staging, converted);
  device.Synchronize();
  return converted;
}

absl::StatusOr<LlamaWeights> DummyWeights(kernels::Device& device, const LlamaConfig& config,
                                          const parallel::ShardPlan& plan, DType dtype) {
  const int64_t hidden = config.hidden_size;
  const int64_t head_dim = config.head_dim;
  const float matrix_scale = 0.02f;
  LlamaWeights weights;
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    LlamaLayerWeights w;
    PAGEDLLM_ASSIGN_OR_RETURN(w.input_norm, DummyTensor(device, {hidden}, dtype, 1.0f, 0.1f));
    PAGEDLLM_ASSIGN_OR_RETURN(
        w.qkv,
        DummyTensor(device, {(plan.heads_local + 2 * plan.kv_heads_local) * head_dim, hidden},
                    dtype, 0.0f, matrix_scale));
    PAGEDLLM_ASSIGN_OR_RETURN(w.o_proj, DummyTensor(device, {hidden, plan.heads_local * head_dim},
                                                    dtype, 0.0f, matrix_scale));
    PAGEDLLM_ASSIGN_OR_RETURN(w.post_norm, DummyTensor(device, {hidden}, dtype, 1.0f, 0.1f));
    PAGEDLLM_ASSIGN_OR_RETURN(w.gate_up, DummyTensor(device, {2 * plan.intermediate_local, hidden},
                                                     dtype, 0.0f, matrix_scale));
    PAGEDLLM_ASSIGN_OR_RETURN(
        w.down, DummyTensor(device, {hidden, plan.intermediate_local}, dtype, 0.0f, matrix_scale));
    weights.layers.push_back(std::move(w));
  }
  PAGEDLLM_ASSIGN_OR_RETURN(weights.embed,
                            DummyTensor(device, {plan.vocab_local, hidden}, dtype, 0.0f, 1.0f));
  PAGEDLLM_ASSIGN_OR_RETURN(
      weights.lm_head, DummyTensor(device, {plan.vocab_local, hidden}, dtype, 0.0f, matrix_scale));
  PAGEDLLM_ASSIGN_OR_RETURN(weights.final_norm, DummyTensor(device, {hidden}, dtype, 1.0f, 0.1f));
  return weights;
}

absl::StatusOr<DType> ChooseDType(const std::string& requested, const LlamaConfig& config,
                                  const kernels::Device& device) {
  if (device.type() == kernels::DeviceType::kCpu) {
    if (requested != "auto" && requested != "float32") {
      return absl::InvalidArgumentError("--dtype " + requested +
                                        ": the CPU backend computes in float32 only");
    }
    return DType::kFloat32;
  }
  if (requested == "auto") {
    return config.torch_dtype == "float16" ? DType::kFloat16 : DType::kBFloat16;
  }
  absl::StatusOr<DType> dtype = kernels::DTypeFromName(requested);
  if (!dtype.ok() || *dtype == DType::kInt32) {
    return absl::InvalidArgumentError("--dtype must be auto, float32, bfloat16 or float16, got " +
                                      requested);
  }
  return *dtype;
}

absl::StatusOr<LlamaWeights> CheckpointWeights(kernels::Device& device,
                                               const std::string& model_dir,
                                               const LlamaConfig& config,
                                               const parallel::ShardPlan& plan, DType dtype) {
  PAGEDLLM_ASSIGN_OR_RETURN(Checkpoint checkpoint, Checkpoint::Open(model_dir));
  LlamaWeights weights;
  // A progress line every few seconds: a big checkpoint takes minutes to read.
  const absl::Time started = absl::Now();
  absl::Time last_report = started;
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    if (absl::Now() - last_report >= absl::Seconds(5)) {
      last_report = absl::Now();
      PAGEDLLM_LOG(INFO) << "loading weights: " << layer << " of " << config.num_hidden_layers
                         << " layers in "
                         << absl::FormatDuration(
                                absl::Trunc(last_report - started, absl::Milliseconds(100)));
    }
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
  HostTensor embed, lm_head, final_norm;
  PAGEDLLM_RETURN_IF_ERROR(
      LoadLlamaEmbeddingShards(checkpoint, config, plan, &embed, &lm_head, &final_norm));
  PAGEDLLM_ASSIGN_OR_RETURN(weights.embed, Upload(device, embed, dtype));
  PAGEDLLM_ASSIGN_OR_RETURN(weights.lm_head, Upload(device, lm_head, dtype));
  PAGEDLLM_ASSIGN_OR_RETURN(weights.final_norm, Upload(device, final_norm, dtype));
  return weights;
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
                                           parallel::Communicator& comm,
                                           const LoadOptions& options) {
  const absl::Time load_started = absl::Now();
  PAGEDLLM_ASSIGN_OR_RETURN(LlamaConfig config, LoadLlamaConfig(model_dir));
  PAGEDLLM_ASSIGN_OR_RETURN(
      parallel::ShardPlan plan,
      parallel::MakeShardPlan(ModelDimsOf(config), comm.rank(), comm.world_size()));
  PAGEDLLM_ASSIGN_OR_RETURN(DType dtype, ChooseDType(options.dtype, config, device));
  LlamaWeights weights;
  if (options.load_format == "dummy") {
    PAGEDLLM_ASSIGN_OR_RETURN(weights, DummyWeights(device, config, plan, dtype));
  } else if (options.load_format == "auto") {
    PAGEDLLM_ASSIGN_OR_RETURN(weights, CheckpointWeights(device, model_dir, config, plan, dtype));
  } else {
    return absl::InvalidArgumentError("--load_format must be auto or dummy, got " +
                                      options.load_format);
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
  const auto bytes_of = [](const Tensor& t) { return t.empty() ? size_t{0} : t.bytes(); };
  loaded.weight_bytes =
      bytes_of(weights.embed) + bytes_of(weights.lm_head) + bytes_of(weights.final_norm);
  for (const LlamaLayerWeights& w : weights.layers) {
    for (const Tensor* t : {&w.input_norm, &w.qkv, &w.o_proj, &w.post_norm, &w.gate_up, &w.down}) {
      loaded.weight_bytes += bytes_of(*t);
    }
  }
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
                     << kernels::DTypeName(dtype) << " on " << device.name() << " in "
                     << absl::FormatDuration(
                            absl::Trunc(absl::Now() - load_started, absl::Milliseconds(10)));
  return loaded;
}

}  // namespace pagedllm::worker
