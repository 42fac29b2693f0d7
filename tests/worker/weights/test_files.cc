#include "tests/worker/weights/test_files.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace pagedllm::worker::testing {

using Json = nlohmann::json;

namespace {

// This process's scratch root, removed when the test binary exits.
class ScratchRoot {
 public:
  ScratchRoot()
      : path_(std::filesystem::path(::testing::TempDir()) /
              absl::StrCat("pagedllm_weights_", getpid())) {}
  ~ScratchRoot() {
    std::error_code error;
    std::filesystem::remove_all(path_, error);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace

std::string MakeTempDir(const std::string& name) {
  static ScratchRoot root;
  const std::filesystem::path dir = root.path() / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

std::string SafetensorsBytes(const std::vector<TensorSpec>& tensors,
                             const std::string& metadata_json) {
  Json header = Json::object();
  if (!metadata_json.empty()) header["__metadata__"] = Json::parse(metadata_json);
  std::string data;
  for (const TensorSpec& t : tensors) {
    const uint64_t begin = data.size();
    data.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
    header[t.name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  return RawSafetensors(text, data);
}

std::string RawSafetensors(const std::string& header, const std::string& data) {
  return RawSafetensors(header.size(), header, data);
}

std::string RawSafetensors(uint64_t header_length, const std::string& header,
                           const std::string& data) {
  std::string bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((header_length >> (8 * i)) & 0xff));
  return bytes + header + data;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::vector<uint8_t> F32Bytes(const std::vector<float>& values) {
  std::vector<uint8_t> bytes(values.size() * 4);
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

std::vector<uint8_t> RandomBytes(size_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> bytes(count);
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
  return bytes;
}

std::string SyntheticConfigJson(const SyntheticModel& m) {
  Json config = {
      {"architectures", {"LlamaForCausalLM"}},
      {"hidden_size", m.hidden},
      {"intermediate_size", m.intermediate},
      {"num_hidden_layers", m.layers},
      {"num_attention_heads", m.heads},
      {"num_key_value_heads", m.kv_heads},
      {"head_dim", m.head_dim},
      {"vocab_size", m.vocab},
      {"max_position_embeddings", 64},
      {"rms_norm_eps", 1e-5},
      {"rope_theta", 10000.0},
      {"tie_word_embeddings", m.tied},
      {"bos_token_id", 0},
      {"eos_token_id", 1},
      {"torch_dtype", m.dtype == "F32"    ? "float32"
                      : m.dtype == "BF16" ? "bfloat16"
                                          : "float16"},
  };
  return config.dump(2);
}

std::vector<TensorSpec> SyntheticTensors(const SyntheticModel& m) {
  const size_t element = m.dtype == "F32" ? 4 : 2;
  std::vector<TensorSpec> tensors;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    tensors.push_back({name, m.dtype, shape,
                       RandomBytes(static_cast<size_t>(numel) * element, 1000 + tensors.size())});
  };
  add("model.embed_tokens.weight", {m.vocab, m.hidden});
  for (int64_t l = 0; l < m.layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    add(p + "input_layernorm.weight", {m.hidden});
    add(p + "self_attn.q_proj.weight", {m.heads * m.head_dim, m.hidden});
    add(p + "self_attn.k_proj.weight", {m.kv_heads * m.head_dim, m.hidden});
    add(p + "self_attn.v_proj.weight", {m.kv_heads * m.head_dim, m.hidden});
    add(p + "self_attn.o_proj.weight", {m.hidden, m.heads * m.head_dim});
    add(p + "post_attention_layernorm.weight", {m.hidden});
    add(p + "mlp.gate_proj.weight", {m.intermediate, m.hidden});
    add(p + "mlp.up_proj.weight", {m.intermediate, m.hidden});
    add(p + "mlp.down_proj.weight", {m.hidden, m.intermediate});
  }
  add("model.norm.weight", {m.hidden});
  if (m.write_lm_head && !m.tied) add("lm_head.weight", {m.vocab, m.hidden});
  return tensors;
}

void WriteSyntheticModel(const std::string& dir, const SyntheticModel& m) {
  WriteFile(dir + "/config.json", SyntheticConfigJson(m));
  const std::vector<TensorSpec> tensors = SyntheticTensors(m);
  if (m.num_files <= 1) {
    WriteFile(dir + "/model.safetensors", SafetensorsBytes(tensors));
    return;
  }
  // Deal the tensors round-robin over the files.
  std::vector<std::vector<TensorSpec>> per_file(m.num_files);
  Json weight_map = Json::object();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const int file = static_cast<int>(i % m.num_files);
    per_file[file].push_back(tensors[i]);
    weight_map[tensors[i].name] =
        absl::StrCat("model-0000", file + 1, "-of-0000", m.num_files, ".safetensors");
  }
  for (int f = 0; f < m.num_files; ++f) {
    WriteFile(absl::StrCat(dir, "/model-0000", f + 1, "-of-0000", m.num_files, ".safetensors"),
              SafetensorsBytes(per_file[f]));
  }
  Json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}};
  WriteFile(dir + "/model.safetensors.index.json", index.dump(2));
}

}  // namespace pagedllm::worker::testing
