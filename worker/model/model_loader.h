// Loads this rank's shard of a Hugging Face Llama checkpoint onto the device and builds the
// model: reads config.json, cuts the Megatron shard (worker/weights), uploads each tensor and
// converts it to the backend's compute dtype.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "kernels/device.h"
#include "pagedllm/worker/v1/worker.pb.h"
#include "parallel/communicator.h"
#include "worker/model/llama_model.h"

namespace pagedllm::worker {

struct LoadedModel {
  std::unique_ptr<LlamaModel> model;
  pagedllm::worker::v1::ModelInfo info;  // what the coordinator needs to know
  kernels::DType cache_dtype = kernels::DType::kFloat32;
  int num_layers = 0;
  int num_kv_heads_local = 0;
  int head_dim = 0;
  size_t weight_bytes = 0;  // this rank's weights on the device
};

struct LoadOptions {
  // "auto": float32 on the CPU; on CUDA bfloat16, or float16 when config.json says float16.
  // Or "float32", "bfloat16", "float16" (the CPU backend computes in float32 only).
  std::string dtype = "auto";
  // "auto": the checkpoint's weights. "dummy": random weights of the config's shapes, made on
  // the device without reading any weight file (config.json is still read): for benchmarks.
  std::string load_format = "auto";
};

absl::StatusOr<LoadedModel> LoadLlamaModel(const std::string& model_dir, kernels::Device& device,
                                           parallel::Communicator& comm,
                                           const LoadOptions& options);

}  // namespace pagedllm::worker
