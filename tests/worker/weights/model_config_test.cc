#include "worker/weights/model_config.h"

#include <cmath>
#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/worker/weights/test_files.h"

namespace pagedllm::worker {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

// inv_freq of a Llama 3.1 8B config (head_dim 128, rope_theta 500000) as transformers 5.17.0 with
// PyTorch 2.11 computes it on CPU, without and with the llama3 scaling (factor 8, 1, 4, 8192).
const float kTransformersDefaultInvFreq[64] = {
    0x1p+0f,         0x1.a11582p-1f,  0x1.53c38cp-1f,  0x1.14c708p-1f,  0x1.c2ef78p-2f,
    0x1.6f56fap-2f,  0x1.2b3dc6p-2f,  0x1.e788c2p-3f,  0x1.8d276p-3f,   0x1.43874p-3f,
    0x1.078d4p-3f,   0x1.ad6338p-4f,  0x1.5dc95ap-4f,  0x1.1cf13p-4f,   0x1.d03ccep-5f,
    0x1.7a2d08p-5f,  0x1.34119p-5f,   0x1.f5ea7ep-6f,  0x1.98de92p-6f,  0x1.4d1272p-6f,
    0x1.0f5386p-6f,  0x1.ba0dd8p-7f,  0x1.681adap-7f,  0x1.2558fep-7f,  0x1.ddee9ep-8f,
    0x1.8554ecp-8f,  0x1.3d2804p-8f,  0x1.025c6ap-8f,  0x1.a4ee4p-9f,   0x1.56e5b8p-9f,
    0x1.175482p-9f,  0x1.c7182p-10f,  0x1.72ba42p-10f, 0x1.2e0046p-10f, 0x1.ec07d4p-11f,
    0x1.90d10cp-11f, 0x1.46831ap-11f, 0x1.09fb7ep-11f, 0x1.b15902p-12f, 0x1.610332p-12f,
    0x1.1f91fp-12f,  0x1.d484dep-13f, 0x1.7da9e8p-13f, 0x1.36e8eap-13f, 0x1.fa8b86p-14f,
    0x1.9ca3eap-14f, 0x1.5024d6p-14f, 0x1.11d41ep-14f, 0x1.be2188p-15f, 0x1.6b6d0ep-15f,
    0x1.280d96p-15f, 0x1.e257p-16f,   0x1.88ec2p-16f,  0x1.4014d2p-16f, 0x1.04be68p-16f,
    0x1.a8d01p-17f,  0x1.5a0f4ep-17f, 0x1.19e8p-17f,   0x1.cb4a9ap-18f, 0x1.76258ep-18f,
    0x1.30c94ep-18f, 0x1.f09184p-19f, 0x1.94836p-19f,  0x1.4985fep-19f};

const float kTransformersLlama3InvFreq[64] = {
    0x1p+0f,         0x1.a11582p-1f,  0x1.53c38cp-1f,  0x1.14c708p-1f,  0x1.c2ef78p-2f,
    0x1.6f56fap-2f,  0x1.2b3dc6p-2f,  0x1.e788c2p-3f,  0x1.8d276p-3f,   0x1.43874p-3f,
    0x1.078d4p-3f,   0x1.ad6338p-4f,  0x1.5dc95ap-4f,  0x1.1cf13p-4f,   0x1.d03ccep-5f,
    0x1.7a2d08p-5f,  0x1.34119p-5f,   0x1.f5ea7ep-6f,  0x1.98de92p-6f,  0x1.4d1272p-6f,
    0x1.0f5386p-6f,  0x1.ba0dd8p-7f,  0x1.681adap-7f,  0x1.2558fep-7f,  0x1.ddee9ep-8f,
    0x1.8554ecp-8f,  0x1.3d2804p-8f,  0x1.025c6ap-8f,  0x1.a4ee4p-9f,   0x1.1bfa0cp-9f,
    0x1.67a23ap-10f, 0x1.c12f3cp-11f, 0x1.132ba4p-11f, 0x1.47e21p-12f,  0x1.765ba4p-13f,
    0x1.90d10cp-14f, 0x1.46831ap-14f, 0x1.09fb7ep-14f, 0x1.b15902p-15f, 0x1.610332p-15f,
    0x1.1f91fp-15f,  0x1.d484dep-16f, 0x1.7da9e8p-16f, 0x1.36e8eap-16f, 0x1.fa8b86p-17f,
    0x1.9ca3eap-17f, 0x1.5024d6p-17f, 0x1.11d41ep-17f, 0x1.be2188p-18f, 0x1.6b6d0ep-18f,
    0x1.280d96p-18f, 0x1.e257p-19f,   0x1.88ec2p-19f,  0x1.4014d2p-19f, 0x1.04be68p-19f,
    0x1.a8d01p-20f,  0x1.5a0f4ep-20f, 0x1.19e8p-20f,   0x1.cb4a9ap-21f, 0x1.76258ep-21f,
    0x1.30c94ep-21f, 0x1.f09184p-22f, 0x1.94836p-22f,  0x1.4985fep-22f};

// A Llama 3.1 8B config.json, as Hugging Face ships it.
Json Llama31Config() {
  return Json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu",
    "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
    "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
    "transformers_version": "4.43.0.dev0", "use_cache": true, "vocab_size": 128256})");
}

// A minimal config: only the required fields.
Json MinimalConfig() {
  return Json::parse(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    "vocab_size": 100})");
}

absl::StatusOr<LlamaConfig> Parse(const Json& config, const std::string& generation = "") {
  return ParseLlamaConfig(config.dump(), generation);
}

std::string ErrorOf(const Json& config, const std::string& generation = "") {
  auto parsed = Parse(config, generation);
  EXPECT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(parsed.status().message());
}

TEST(ModelConfigTest, ParsesLlama31) {
  auto config = Parse(Llama31Config());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, "LlamaForCausalLM");
  EXPECT_EQ(config->hidden_size, 4096);
  EXPECT_EQ(config->intermediate_size, 14336);
  EXPECT_EQ(config->num_hidden_layers, 32);
  EXPECT_EQ(config->num_attention_heads, 32);
  EXPECT_EQ(config->num_key_value_heads, 8);
  EXPECT_EQ(config->head_dim, 128);
  EXPECT_EQ(config->vocab_size, 128256);
  EXPECT_EQ(config->max_position_embeddings, 131072);
  EXPECT_DOUBLE_EQ(config->rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(config->rope_theta, 500000.0);
  EXPECT_EQ(config->rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_DOUBLE_EQ(config->rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(config->rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(config->rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(config->rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_FALSE(config->tie_word_embeddings);
  EXPECT_EQ(config->bos_token_id, 128000);
  EXPECT_EQ(config->eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(config->torch_dtype, "bfloat16");

  const parallel::ModelDims dims = ModelDimsOf(*config);
  EXPECT_EQ(dims.hidden, 4096);
  EXPECT_EQ(dims.intermediate, 14336);
  EXPECT_EQ(dims.num_heads, 32);
  EXPECT_EQ(dims.num_kv_heads, 8);
  EXPECT_EQ(dims.head_dim, 128);
  EXPECT_EQ(dims.vocab, 128256);
}

TEST(ModelConfigTest, AppliesDefaults) {
  auto config = Parse(MinimalConfig());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->num_key_value_heads, 4);
  EXPECT_EQ(config->head_dim, 16);
  EXPECT_DOUBLE_EQ(config->rope_theta, 10000.0);
  EXPECT_EQ(config->rope_scaling.type, RopeScaling::Type::kDefault);
  EXPECT_FALSE(config->tie_word_embeddings);
  EXPECT_EQ(config->bos_token_id, -1);
  EXPECT_TRUE(config->eos_token_ids.empty());
  EXPECT_EQ(config->torch_dtype, "");

  Json nulls = MinimalConfig();  // Mistral-style explicit nulls mean "default"
  nulls["head_dim"] = nullptr;
  nulls["num_key_value_heads"] = nullptr;
  nulls["rope_scaling"] = nullptr;
  config = Parse(nulls);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->head_dim, 16);
  EXPECT_EQ(config->num_key_value_heads, 4);
}

TEST(ModelConfigTest, ReadsTransformers5RopeParameters) {
  Json json = MinimalConfig();
  json["rope_parameters"] = {{"rope_theta", 250000.0}, {"rope_type", "default"}};
  json["dtype"] = "float16";
  json["head_dim"] = 32;
  auto config = Parse(json);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_DOUBLE_EQ(config->rope_theta, 250000.0);
  EXPECT_EQ(config->rope_scaling.type, RopeScaling::Type::kDefault);
  EXPECT_EQ(config->torch_dtype, "float16");
  EXPECT_EQ(config->head_dim, 32);

  json["rope_parameters"] = {{"rope_theta", 500000.0},  {"rope_type", "llama3"},
                             {"factor", 32.0},          {"low_freq_factor", 1.0},
                             {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  config = Parse(json);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_DOUBLE_EQ(config->rope_scaling.factor, 32.0);
  EXPECT_DOUBLE_EQ(config->rope_theta, 500000.0);
}

TEST(ModelConfigTest, AcceptsMistralWithoutSlidingWindow) {
  Json json = MinimalConfig();
  json["architectures"] = {"MistralForCausalLM"};
  json["sliding_window"] = nullptr;
  auto config = Parse(json);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, "MistralForCausalLM");

  json["max_position_embeddings"] = 32768;
  json["sliding_window"] = 4096;
  EXPECT_THAT(ErrorOf(json), HasSubstr("sliding_window (4096) is not supported"));
}

TEST(ModelConfigTest, MergesEosIdsWithGenerationConfig) {
  Json json = MinimalConfig();
  json["eos_token_id"] = {1, 2};
  auto config = Parse(json, R"({"eos_token_id": [2, 3], "do_sample": true})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->eos_token_ids, (std::vector<int64_t>{1, 2, 3}));

  json["eos_token_id"] = 5;
  config = Parse(json, R"({"eos_token_id": 5})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->eos_token_ids, (std::vector<int64_t>{5}));

  EXPECT_THAT(ErrorOf(json, "{oops"), HasSubstr("generation_config.json: not valid JSON"));
  EXPECT_THAT(ErrorOf(json, R"({"eos_token_id": "x"})"),
              HasSubstr("generation_config.json: eos_token_id must be an integer"));
}

TEST(ModelConfigTest, RejectsBadFields) {
  Json json = MinimalConfig();
  json["num_attention_heads"] = 7;
  json["num_key_value_heads"] = 2;
  json["head_dim"] = 8;
  EXPECT_EQ(ErrorOf(json),
            "config.json: num_attention_heads (7) is not a multiple of num_key_value_heads (2)");

  json = MinimalConfig();
  json.erase("hidden_size");
  EXPECT_EQ(ErrorOf(json), "config.json: missing hidden_size");

  json = MinimalConfig();
  json["hidden_size"] = "big";
  EXPECT_EQ(ErrorOf(json), "config.json: hidden_size must be an integer, got \"big\"");

  json = MinimalConfig();
  json["intermediate_size"] = 12.5;
  EXPECT_THAT(ErrorOf(json), HasSubstr("intermediate_size must be an integer, got 12.5"));

  json = MinimalConfig();
  json["vocab_size"] = 0;
  EXPECT_EQ(ErrorOf(json), "config.json: vocab_size (0) must be positive");

  json = MinimalConfig();
  json["num_hidden_layers"] = -3;
  EXPECT_EQ(ErrorOf(json), "config.json: num_hidden_layers (-3) must be positive");

  json = MinimalConfig();
  json["hidden_size"] = 66;
  EXPECT_THAT(ErrorOf(json),
              HasSubstr("hidden_size (66) is not a multiple of num_attention_heads (4)"));

  json = MinimalConfig();
  json["head_dim"] = 15;
  EXPECT_EQ(ErrorOf(json), "config.json: head_dim (15) must be even for RoPE");

  json = MinimalConfig();
  json["rms_norm_eps"] = "tiny";
  EXPECT_THAT(ErrorOf(json), HasSubstr("rms_norm_eps must be a number"));

  json = MinimalConfig();
  json["tie_word_embeddings"] = 1;
  EXPECT_THAT(ErrorOf(json), HasSubstr("tie_word_embeddings must be true or false"));

  json = MinimalConfig();
  json["eos_token_id"] = 100;
  EXPECT_THAT(ErrorOf(json), HasSubstr("eos_token_id (100) is outside the vocabulary (100)"));

  EXPECT_THAT(ErrorOf(Json::array({1, 2})), HasSubstr("config.json: not a JSON object"));
  EXPECT_THAT(ParseLlamaConfig("{not json", "").status().message(),
              HasSubstr("config.json: not valid JSON"));
}

TEST(ModelConfigTest, RejectsUnsupportedModels) {
  Json json = MinimalConfig();
  json["architectures"] = {"GPT2LMHeadModel"};
  EXPECT_THAT(ErrorOf(json), HasSubstr("architecture GPT2LMHeadModel is not supported"));

  json = MinimalConfig();
  json.erase("architectures");
  json["model_type"] = "llama";
  EXPECT_TRUE(Parse(json).ok());
  json["model_type"] = "gpt2";
  EXPECT_THAT(ErrorOf(json), HasSubstr("missing architectures"));

  for (const char* bias : {"attention_bias", "mlp_bias"}) {
    json = MinimalConfig();
    json[bias] = true;
    EXPECT_EQ(ErrorOf(json),
              std::string("config.json: ") + bias + " is true; biases are not supported");
  }

  json = MinimalConfig();
  json["hidden_act"] = "gelu";
  EXPECT_THAT(ErrorOf(json), HasSubstr("hidden_act \"gelu\" is not supported"));

  json = MinimalConfig();
  json["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  EXPECT_EQ(ErrorOf(json),
            "config.json: rope_scaling.rope_type \"linear\" is not supported (supported: default, "
            "llama3)");
  json["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  EXPECT_THAT(ErrorOf(json), HasSubstr("\"yarn\" is not supported"));
  json.erase("rope_scaling");
  json["rope_parameters"] = {{"rope_type", "dynamic"}, {"rope_theta", 10000.0}};
  EXPECT_THAT(ErrorOf(json), HasSubstr("rope_parameters.rope_type \"dynamic\" is not supported"));

  json = Llama31Config();
  json["rope_scaling"].erase("low_freq_factor");
  EXPECT_EQ(ErrorOf(json), "config.json: missing rope_scaling.low_freq_factor");
  json = Llama31Config();
  json["rope_scaling"]["high_freq_factor"] = 0.5;
  EXPECT_THAT(ErrorOf(json), HasSubstr("low_freq_factor (1) < high_freq_factor (0.5)"));
}

TEST(ModelConfigTest, DefaultRopeInvFreq) {
  auto config = Parse(MinimalConfig());  // head_dim 16, theta 10000
  ASSERT_TRUE(config.ok()) << config.status();
  const std::vector<float> inv_freq = RopeInvFreq(*config);
  ASSERT_EQ(inv_freq.size(), 8u);
  EXPECT_EQ(inv_freq[0], 1.0f);
  for (size_t i = 0; i < inv_freq.size(); ++i) {
    const double expected = 1.0 / std::pow(10000.0, 2.0 * i / 16.0);
    EXPECT_NEAR(inv_freq[i], expected, expected * 1e-6) << i;
  }
}

TEST(ModelConfigTest, Llama3RopeInvFreq) {
  auto config = Parse(Llama31Config());
  ASSERT_TRUE(config.ok()) << config.status();
  const std::vector<float> inv_freq = RopeInvFreq(*config);
  ASSERT_EQ(inv_freq.size(), 64u);
  LlamaConfig unscaled = *config;
  unscaled.rope_scaling = RopeScaling{};
  const std::vector<float> base = RopeInvFreq(unscaled);

  // The rule of transformers' _compute_llama3_parameters, in double.
  const double pi = 3.14159265358979323846;
  int high = 0, low = 0, medium = 0;
  for (size_t i = 0; i < inv_freq.size(); ++i) {
    const double wavelen = 2 * pi / base[i];
    double expected = base[i];
    if (wavelen < 8192.0 / 4.0) {
      ++high;
      EXPECT_EQ(inv_freq[i], base[i]) << i;  // high frequencies are untouched
    } else if (wavelen > 8192.0) {
      ++low;
      expected = base[i] / 8.0;
      EXPECT_EQ(inv_freq[i], base[i] / 8.0f) << i;
    } else {
      ++medium;
      const double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
      expected = (1 - smooth) * base[i] / 8.0 + smooth * base[i];
    }
    EXPECT_NEAR(inv_freq[i], expected, expected * 1e-5) << i;
  }
  EXPECT_GT(high, 0);
  EXPECT_GT(low, 0);
  EXPECT_GT(medium, 0);
}

TEST(ModelConfigTest, RopeInvFreqMatchesTransformersBitForBit) {
  auto config = Parse(Llama31Config());
  ASSERT_TRUE(config.ok()) << config.status();
  const std::vector<float> llama3 = RopeInvFreq(*config);
  config->rope_scaling = RopeScaling{};
  const std::vector<float> plain = RopeInvFreq(*config);
  ASSERT_EQ(llama3.size(), 64u);
  ASSERT_EQ(plain.size(), 64u);
  for (size_t i = 0; i < 64; ++i) {
    EXPECT_EQ(plain[i], kTransformersDefaultInvFreq[i]) << i;
    EXPECT_EQ(llama3[i], kTransformersLlama3InvFreq[i]) << i;
  }
}

TEST(ModelConfigTest, LoadsBundledModelConfig) {
  std::string dir = std::string(PAGEDLLM_SOURCE_DIR) + "/models/pagedllm-tiny-py";
  if (!std::filesystem::exists(dir + "/config.json")) dir = "/work/shared/models/pagedllm-tiny-py";
  auto config = LoadLlamaConfig(dir);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->hidden_size, 256);
  EXPECT_EQ(config->num_hidden_layers, 6);
  EXPECT_EQ(config->num_attention_heads, 8);
  EXPECT_EQ(config->num_key_value_heads, 4);
  EXPECT_EQ(config->head_dim, 32);
  EXPECT_EQ(config->vocab_size, 4096);
  EXPECT_EQ(config->intermediate_size, 704);
  EXPECT_EQ(config->max_position_embeddings, 1024);
  EXPECT_FALSE(config->tie_word_embeddings);
  EXPECT_DOUBLE_EQ(config->rope_theta, 10000.0);
  EXPECT_DOUBLE_EQ(config->rms_norm_eps, 1e-5);
  EXPECT_EQ(config->bos_token_id, 0);
  EXPECT_EQ(config->eos_token_ids, (std::vector<int64_t>{1}));
  EXPECT_EQ(config->torch_dtype, "float32");
}

TEST(ModelConfigTest, MissingConfigIsNotFound) {
  const std::string dir = testing::MakeTempDir("no_config");
  auto config = LoadLlamaConfig(dir);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(config.status().message()), HasSubstr(dir));
}

}  // namespace
}  // namespace pagedllm::worker
