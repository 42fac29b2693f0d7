// The Llama-family model configuration, read from a Hugging Face model directory's config.json
// (and generation_config.json for extra EOS ids), validated, plus the RoPE inverse frequencies
// transformers computes from it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "parallel/shard_plan.h"

namespace pagedllm::worker {

// RoPE frequency scaling: none ("default") or Llama 3.1's ("llama3").
struct RopeScaling {
  enum class Type : int8_t { kDefault, kLlama3 };
  Type type = Type::kDefault;
  // The llama3 parameters (unused for kDefault).
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct LlamaConfig {
  std::string architecture;  // "LlamaForCausalLM" or "MistralForCausalLM"
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // defaults to num_attention_heads
  int64_t head_dim = 0;             // defaults to hidden_size / num_attention_heads
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  int64_t bos_token_id = -1;           // -1 when the config has none
  std::vector<int64_t> eos_token_ids;  // config.json's, then generation_config.json's; no repeats
  std::string torch_dtype;             // "dtype" or "torch_dtype", e.g. "bfloat16"; "" when absent
};

// Reads `model_dir`/config.json (required) and `model_dir`/generation_config.json (optional).
// Errors name the file, the field and the value, e.g.
// "config.json: num_attention_heads (7) is not a multiple of num_key_value_heads (2)".
absl::StatusOr<LlamaConfig> LoadLlamaConfig(const std::string& model_dir);

// The same, from JSON text already in memory (`generation_config_json` may be empty).
absl::StatusOr<LlamaConfig> ParseLlamaConfig(const std::string& config_json,
                                             const std::string& generation_config_json);

// RoPE inverse frequencies, [head_dim / 2] float32, computed in float32 as transformers does:
// 1 / theta^(arange(0, head_dim, 2) / head_dim), then `_compute_llama3_parameters` for llama3.
std::vector<float> RopeInvFreq(const LlamaConfig& config);

// The sizes shard planning needs (parallel/ does not know LlamaConfig).
parallel::ModelDims ModelDimsOf(const LlamaConfig& config);

}  // namespace pagedllm::worker
