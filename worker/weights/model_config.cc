#include "worker/weights/model_config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace pagedllm::worker {
namespace {

using Json = nlohmann::json;

constexpr int64_t kMaxSize = int64_t{1} << 24;  // bound on every size, so products fit in int64

absl::Status Invalid(const std::string& file, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(file, ": ", what));
}

// The value at `key`, or nullptr when it is absent or null.
const Json* Field(const Json& object, const std::string& key) {
  auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

// Reads typed fields of one JSON object; errors name `file` and the field (with its `prefix`).
class FieldReader {
 public:
  FieldReader(const Json& object, std::string file, std::string prefix = "")
      : object_(object), file_(std::move(file)), prefix_(std::move(prefix)) {}

  // Leaves `*out` alone when the field is absent (an error if `required`).
  absl::Status Int(const std::string& key, bool required, int64_t* out) const {
    const Json* value = Field(object_, key);
    if (value == nullptr) return required ? Missing(key) : absl::OkStatus();
    PAGEDLLM_RETURN_IF_ERROR(ToInt(key, *value, out));
    return absl::OkStatus();
  }

  absl::Status Double(const std::string& key, bool required, double* out) const {
    const Json* value = Field(object_, key);
    if (value == nullptr) return required ? Missing(key) : absl::OkStatus();
    if (!value->is_number()) return Bad(key, *value, "a number");
    *out = value->get<double>();
    if (!std::isfinite(*out)) return Bad(key, *value, "a finite number");
    return absl::OkStatus();
  }

  absl::Status Bool(const std::string& key, bool* out) const {
    const Json* value = Field(object_, key);
    if (value == nullptr) return absl::OkStatus();
    if (!value->is_boolean()) return Bad(key, *value, "true or false");
    *out = value->get<bool>();
    return absl::OkStatus();
  }

  // An int or a list of ints, appended to `*out` unless already there.
  absl::Status IntList(const std::string& key, std::vector<int64_t>* out) const {
    const Json* value = Field(object_, key);
    if (value == nullptr) return absl::OkStatus();
    std::vector<int64_t> ids;
    if (value->is_array()) {
      for (const Json& item : *value) {
        int64_t id = 0;
        PAGEDLLM_RETURN_IF_ERROR(ToInt(key, item, &id));
        ids.push_back(id);
      }
    } else {
      int64_t id = 0;
      PAGEDLLM_RETURN_IF_ERROR(ToInt(key, *value, &id));
      ids.push_back(id);
    }
    for (int64_t id : ids) {
      if (std::find(out->begin(), out->end(), id) == out->end()) out->push_back(id);
    }
    return absl::OkStatus();
  }

  std::string Name(const std::string& key) const { return prefix_ + key; }

 private:
  absl::Status ToInt(const std::string& key, const Json& value, int64_t* out) const {
    if (value.is_number_integer()) {
      if (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
        return Bad(key, value, "an integer that fits in 64 bits");
      }
      *out = value.get<int64_t>();
      return absl::OkStatus();
    }
    // Accept 4096.0 (some exporters write floats), but not 4096.5.
    if (value.is_number_float()) {
      const double d = value.get<double>();
      if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) < 9e15) {
        *out = static_cast<int64_t>(d);
        return absl::OkStatus();
      }
    }
    return Bad(key, value, "an integer");
  }
  absl::Status Missing(const std::string& key) const {
    return Invalid(file_, absl::StrCat("missing ", Name(key)));
  }
  absl::Status Bad(const std::string& key, const Json& value, const std::string& expected) const {
    return Invalid(file_, absl::StrCat(Name(key), " must be ", expected, ", got ", value.dump()));
  }

  const Json& object_;
  std::string file_;
  std::string prefix_;
};

absl::StatusOr<Json> ParseJsonObject(const std::string& text, const std::string& file) {
  Json json;
  try {
    json = Json::parse(text);
  } catch (const Json::exception& e) {
    return Invalid(file, absl::StrCat("not valid JSON: ", e.what()));
  }
  if (!json.is_object()) return Invalid(file, "not a JSON object");
  return json;
}

absl::Status ReadArchitecture(const Json& json, LlamaConfig* config) {
  static const char* const kSupported[] = {"LlamaForCausalLM", "MistralForCausalLM"};
  const Json* archs = Field(json, "architectures");
  if (archs == nullptr) {
    // Old configs may carry only model_type.
    const Json* type = Field(json, "model_type");
    if (type != nullptr && *type == "llama") {
      config->architecture = "LlamaForCausalLM";
    } else if (type != nullptr && *type == "mistral") {
      config->architecture = "MistralForCausalLM";
    } else {
      return Invalid("config.json",
                     "missing architectures (and model_type is not llama or mistral)");
    }
    return absl::OkStatus();
  }
  if (!archs->is_array() || archs->empty() || !(*archs)[0].is_string()) {
    return Invalid("config.json",
                   absl::StrCat("architectures must be a list of strings, got ", archs->dump()));
  }
  config->architecture = (*archs)[0].get<std::string>();
  for (const char* supported : kSupported) {
    if (config->architecture == supported) return absl::OkStatus();
  }
  return Invalid("config.json", absl::StrCat("architecture ", config->architecture,
                                             " is not supported (supported: ",
                                             absl::StrJoin(kSupported, ", "), ")"));
}

// rope_theta and the rope scaling: `rope_parameters` (transformers >= 5) or `rope_scaling`.
absl::Status ReadRope(const Json& json, LlamaConfig* config) {
  FieldReader top(json, "config.json");
  PAGEDLLM_RETURN_IF_ERROR(top.Double("rope_theta", false, &config->rope_theta));

  const Json* params = Field(json, "rope_parameters");
  const Json* scaling = Field(json, "rope_scaling");
  for (const Json* object : {params, scaling}) {
    if (object != nullptr && !object->is_object()) {
      return Invalid("config.json",
                     absl::StrCat(object == params ? "rope_parameters" : "rope_scaling",
                                  " must be an object, got ", object->dump()));
    }
  }
  if (params != nullptr) {
    FieldReader reader(*params, "config.json", "rope_parameters.");
    PAGEDLLM_RETURN_IF_ERROR(reader.Double("rope_theta", false, &config->rope_theta));
  }
  const Json* rope = scaling != nullptr ? scaling : params;
  if (rope == nullptr) return absl::OkStatus();
  const std::string prefix = rope == scaling ? "rope_scaling." : "rope_parameters.";

  std::string type = "default";
  const Json* type_json = Field(*rope, "rope_type");
  if (type_json == nullptr) type_json = Field(*rope, "type");
  if (type_json != nullptr) {
    if (!type_json->is_string()) {
      return Invalid("config.json",
                     absl::StrCat(prefix, "rope_type must be a string, got ", type_json->dump()));
    }
    type = type_json->get<std::string>();
  }
  if (type == "default") {
    config->rope_scaling = RopeScaling{};
    return absl::OkStatus();
  }
  if (type != "llama3") {
    return Invalid("config.json", absl::StrCat(prefix, "rope_type \"", type,
                                               "\" is not supported (supported: default, llama3)"));
  }
  RopeScaling& s = config->rope_scaling;
  s.type = RopeScaling::Type::kLlama3;
  FieldReader reader(*rope, "config.json", prefix);
  PAGEDLLM_RETURN_IF_ERROR(reader.Double("factor", true, &s.factor));
  PAGEDLLM_RETURN_IF_ERROR(reader.Double("low_freq_factor", true, &s.low_freq_factor));
  PAGEDLLM_RETURN_IF_ERROR(reader.Double("high_freq_factor", true, &s.high_freq_factor));
  PAGEDLLM_RETURN_IF_ERROR(
      reader.Int("original_max_position_embeddings", true, &s.original_max_position_embeddings));
  if (!(s.factor > 0) || !(s.low_freq_factor > 0) || !(s.high_freq_factor > s.low_freq_factor) ||
      s.original_max_position_embeddings <= 0) {
    return Invalid(
        "config.json",
        absl::StrCat(prefix, "llama3 parameters need factor > 0 (", s.factor,
                     "), 0 < low_freq_factor (", s.low_freq_factor, ") < high_freq_factor (",
                     s.high_freq_factor, ") and original_max_position_embeddings > 0 (",
                     s.original_max_position_embeddings, ")"));
  }
  return absl::OkStatus();
}

absl::Status ReadUnsupportedFeatures(const Json& json, const LlamaConfig& config) {
  FieldReader reader(json, "config.json");
  for (const char* bias : {"attention_bias", "mlp_bias"}) {
    bool value = false;
    PAGEDLLM_RETURN_IF_ERROR(reader.Bool(bias, &value));
    if (value)
      return Invalid("config.json", absl::StrCat(bias, " is true; biases are not supported"));
  }
  if (const Json* act = Field(json, "hidden_act"); act != nullptr && *act != "silu") {
    return Invalid("config.json",
                   absl::StrCat("hidden_act ", act->dump(), " is not supported (only \"silu\")"));
  }
  double partial_rotary = 1.0;
  PAGEDLLM_RETURN_IF_ERROR(reader.Double("partial_rotary_factor", false, &partial_rotary));
  if (partial_rotary != 1.0) {
    return Invalid("config.json", absl::StrCat("partial_rotary_factor (", partial_rotary,
                                               ") is not supported (only 1)"));
  }
  // A sliding window at least as long as the context never slides.
  int64_t window = 0;
  PAGEDLLM_RETURN_IF_ERROR(reader.Int("sliding_window", false, &window));
  if (window != 0 && window < config.max_position_embeddings) {
    return Invalid(
        "config.json",
        absl::StrCat("sliding_window (", window, ") is not supported (", config.architecture,
                     " with sliding-window attention, max_position_embeddings ",
                     config.max_position_embeddings, ")"));
  }
  return absl::OkStatus();
}

absl::Status Validate(const LlamaConfig& c) {
  const std::pair<const char*, int64_t> sizes[] = {
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_attention_heads", c.num_attention_heads},
      {"num_key_value_heads", c.num_key_value_heads},
      {"head_dim", c.head_dim},
      {"vocab_size", c.vocab_size},
      {"max_position_embeddings", c.max_position_embeddings},
  };
  for (const auto& [name, value] : sizes) {
    if (value <= 0)
      return Invalid("config.json", absl::StrCat(name, " (", value, ") must be positive"));
    if (value > kMaxSize) {
      return Invalid("config.json",
                     absl::StrCat(name, " (", value, ") is too large (limit ", kMaxSize, ")"));
    }
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return Invalid("config.json", absl::StrCat("num_attention_heads (", c.num_attention_heads,
                                               ") is not a multiple of num_key_value_heads (",
                                               c.num_key_value_heads, ")"));
  }
  if (c.head_dim % 2 != 0) {
    return Invalid("config.json",
                   absl::StrCat("head_dim (", c.head_dim, ") must be even for RoPE"));
  }
  if (!(c.rms_norm_eps > 0)) {
    return Invalid("config.json",
                   absl::StrCat("rms_norm_eps (", c.rms_norm_eps, ") must be positive"));
  }
  if (!(c.rope_theta > 0)) {
    return Invalid("config.json", absl::StrCat("rope_theta (", c.rope_theta, ") must be positive"));
  }
  if (c.bos_token_id >= c.vocab_size || c.bos_token_id < -1) {
    return Invalid("config.json", absl::StrCat("bos_token_id (", c.bos_token_id,
                                               ") is outside the vocabulary (", c.vocab_size, ")"));
  }
  for (int64_t eos : c.eos_token_ids) {
    if (eos < 0 || eos >= c.vocab_size) {
      return Invalid(
          "config.json",
          absl::StrCat("eos_token_id (", eos, ") is outside the vocabulary (", c.vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

absl::StatusOr<LlamaConfig> ParseLlamaConfig(const std::string& config_json,
                                             const std::string& generation_config_json) {
  PAGEDLLM_ASSIGN_OR_RETURN(const Json json, ParseJsonObject(config_json, "config.json"));
  LlamaConfig c;
  PAGEDLLM_RETURN_IF_ERROR(ReadArchitecture(json, &c));
  FieldReader reader(json, "config.json");
  PAGEDLLM_RETURN_IF_ERROR(reader.Int("hidden_size", true, &c.hidden_size));
  PAGEDLLM_RETURN_IF_ERROR(reader.Int("intermediate_size", true, &c.intermediate_size));
  PAGEDLLM_RETURN_IF_ERROR(reader.Int("num_hidden_layers", true, &c.num_hidden_layers));
  PAGEDLLM_RETURN_IF_ERROR(reader.Int("num_attention_heads", true, &c.num_attention_heads));
  PAGEDLLM_RETURN_IF_ERROR(reader.Int("vocab_size", true, &c.vocab_size));
  c.num_key_value_heads = c.num_attention_heads;
  PAGEDLLM_RETURN_IF_ERROR(reader.Int("num_key_value_heads", false, &c.num_key_value_heads));
  if (Field(json, "head_dim") != nullptr) {
    PAGEDLLM_RETURN_IF_ERROR(reader.Int("head_dim", true, &c.head_dim));
  } else if (c.num_attention_heads > 0) {
    if (c.hidden_size % c.num_attention_heads != 0) {
      return Invalid("config.json",
                     absl::StrCat("hidden_size (", c.hidden_size,
                                  ") is not a multiple of num_attention_heads (",
                                  c.num_attention_heads, ") and head_dim is not given"));
    }
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  PAGEDLLM_RETURN_IF_ERROR(
      reader.Int("max_position_embeddings", false, &c.max_position_embeddings));
  PAGEDLLM_RETURN_IF_ERROR(reader.Double("rms_norm_eps", false, &c.rms_norm_eps));
  PAGEDLLM_RETURN_IF_ERROR(reader.Bool("tie_word_embeddings", &c.tie_word_embeddings));
  PAGEDLLM_RETURN_IF_ERROR(reader.Int("bos_token_id", false, &c.bos_token_id));
  PAGEDLLM_RETURN_IF_ERROR(reader.IntList("eos_token_id", &c.eos_token_ids));
  for (const char* key : {"dtype", "torch_dtype"}) {
    const Json* dtype = Field(json, key);
    if (dtype != nullptr && dtype->is_string()) {
      c.torch_dtype = dtype->get<std::string>();
      break;
    }
  }
  PAGEDLLM_RETURN_IF_ERROR(ReadRope(json, &c));
  PAGEDLLM_RETURN_IF_ERROR(ReadUnsupportedFeatures(json, c));

  if (!generation_config_json.empty()) {
    PAGEDLLM_ASSIGN_OR_RETURN(const Json generation,
                              ParseJsonObject(generation_config_json, "generation_config.json"));
    FieldReader gen_reader(generation, "generation_config.json");
    PAGEDLLM_RETURN_IF_ERROR(gen_reader.IntList("eos_token_id", &c.eos_token_ids));
  }
  PAGEDLLM_RETURN_IF_ERROR(Validate(c));
  return c;
}

absl::StatusOr<LlamaConfig> LoadLlamaConfig(const std::string& model_dir) {
  const std::string config_path = absl::StrCat(model_dir, "/config.json");
  auto config_text = ReadFile(config_path);
  if (!config_text.ok()) {
    return absl::NotFoundError(absl::StrCat("model dir ", model_dir, ": no config.json"));
  }
  std::string generation_text;
  auto generation = ReadFile(absl::StrCat(model_dir, "/generation_config.json"));
  if (generation.ok()) generation_text = std::move(generation).value();
  return ParseLlamaConfig(*config_text, generation_text);
}

std::vector<float> RopeInvFreq(const LlamaConfig& config) {
  // transformers' _compute_default_rope_parameters, in float32:
  //   inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
  const int64_t dim = config.head_dim;
  const float base = static_cast<float>(config.rope_theta);
  std::vector<float> inv_freq(static_cast<size_t>(dim / 2));  // [head_dim / 2]
  for (int64_t i = 0; i < dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
    inv_freq[i] = 1.0f / std::pow(base, exponent);
  }
  if (config.rope_scaling.type != RopeScaling::Type::kLlama3) return inv_freq;

  // _compute_llama3_parameters. Python scalars meet float32 tensors, so each operation rounds to
  // float32 in the same order; `x / t` is torch's reciprocal(t) * x.
  const RopeScaling& s = config.rope_scaling;
  const double old_context_len = static_cast<double>(s.original_max_position_embeddings);
  const float low_freq_wavelen = static_cast<float>(old_context_len / s.low_freq_factor);
  const float high_freq_wavelen = static_cast<float>(old_context_len / s.high_freq_factor);
  const float factor = static_cast<float>(s.factor);
  const float low = static_cast<float>(s.low_freq_factor);
  const float band = static_cast<float>(s.high_freq_factor - s.low_freq_factor);
  const float two_pi = static_cast<float>(2 * 3.14159265358979323846);
  for (float& f : inv_freq) {
    const float wavelen = (1.0f / f) * two_pi;
    const float scaled = wavelen > low_freq_wavelen ? f / factor : f;
    const float smooth = ((1.0f / wavelen) * static_cast<float>(old_context_len) - low) / band;
    const float smoothed = (1.0f - smooth) * scaled / factor + smooth * scaled;
    const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
    f = medium ? smoothed : scaled;
  }
  return inv_freq;
}

parallel::ModelDims ModelDimsOf(const LlamaConfig& config) {
  parallel::ModelDims dims;
  dims.hidden = config.hidden_size;
  dims.intermediate = config.intermediate_size;
  dims.num_heads = config.num_attention_heads;
  dims.num_kv_heads = config.num_key_value_heads;
  dims.head_dim = config.head_dim;
  dims.vocab = config.vocab_size;
  return dims;
}

}  // namespace pagedllm::worker
