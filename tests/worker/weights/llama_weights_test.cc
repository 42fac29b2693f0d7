#include "worker/weights/llama_weights.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/worker/weights/test_files.h"

namespace pagedllm::worker {
namespace {

using ::testing::HasSubstr;
using testing::SyntheticModel;
using Bytes = std::vector<uint8_t>;

Bytes BytesOf(const TensorView& view) { return Bytes(view.data, view.data + view.bytes); }

// Rows [begin, begin + count) of a 2-D tensor's bytes.
Bytes Rows(const HostTensor& t, int64_t begin, int64_t count) {
  const size_t row = t.bytes.size() / t.shape[0];
  return Bytes(t.bytes.begin() + begin * row, t.bytes.begin() + (begin + count) * row);
}

// Appends columns [begin, begin + count) of row `r` of a 2-D tensor to `out`.
void AppendColumns(const HostTensor& t, int64_t r, int64_t begin, int64_t count, Bytes* out) {
  const size_t element = WeightDTypeSize(t.dtype);
  const auto row = t.bytes.begin() + r * t.shape[1] * element;
  out->insert(out->end(), row + begin * element, row + (begin + count) * element);
}

struct Loaded {
  LlamaConfig config;
  std::vector<parallel::ShardPlan> plans;
  std::vector<LlamaShardWeights> shards;
};

void LoadAllRanks(const Checkpoint& checkpoint, const LlamaConfig& config, int tp, Loaded* out) {
  out->config = config;
  for (int rank = 0; rank < tp; ++rank) {
    auto plan = parallel::MakeShardPlan(ModelDimsOf(config), rank, tp);
    ASSERT_TRUE(plan.ok()) << plan.status();
    auto shard = LoadLlamaShard(checkpoint, config, *plan);
    ASSERT_TRUE(shard.ok()) << shard.status();
    out->plans.push_back(*plan);
    out->shards.push_back(std::move(shard).value());
  }
}

// The shards of every rank, put back together, are the checkpoint's tensors.
void ExpectShardsReassemble(const Checkpoint& checkpoint, const Loaded& loaded) {
  const LlamaConfig& c = loaded.config;
  const int tp = static_cast<int>(loaded.plans.size());
  const int64_t hd = c.head_dim;
  auto full = [&](const std::string& name) {
    auto view = checkpoint.Get(name);
    EXPECT_TRUE(view.ok()) << view.status();
    return view.ok() ? BytesOf(*view) : Bytes();
  };

  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    SCOPED_TRACE(absl::StrCat("tp ", tp, " layer ", l));
    const std::string p = absl::StrCat("model.layers.", l, ".");
    Bytes q, o(0), gate, up, down;
    Bytes k(full(p + "self_attn.k_proj.weight").size()), v(k.size());
    std::vector<int> kv_covered(c.num_key_value_heads, 0);
    for (int r = 0; r < tp; ++r) {
      const parallel::ShardPlan& plan = loaded.plans[r];
      const LlamaLayerShard& s = loaded.shards[r].layers[l];
      const int64_t ql = plan.heads_local * hd, kvl = plan.kv_heads_local * hd;
      const int64_t il = plan.intermediate_local;
      ASSERT_EQ(s.qkv.shape, (std::vector<int64_t>{ql + 2 * kvl, c.hidden_size}));
      ASSERT_EQ(s.o_proj.shape, (std::vector<int64_t>{c.hidden_size, ql}));
      ASSERT_EQ(s.gate_up.shape, (std::vector<int64_t>{2 * il, c.hidden_size}));
      ASSERT_EQ(s.down.shape, (std::vector<int64_t>{c.hidden_size, il}));
      ASSERT_EQ(s.input_norm.shape, (std::vector<int64_t>{c.hidden_size}));
      EXPECT_EQ(s.input_norm.bytes, full(p + "input_layernorm.weight"));
      EXPECT_EQ(s.post_norm.bytes, full(p + "post_attention_layernorm.weight"));

      const Bytes q_part = Rows(s.qkv, 0, ql);
      q.insert(q.end(), q_part.begin(), q_part.end());
      // K and V go back where the plan says; replicas must all agree with the original.
      const Bytes k_part = Rows(s.qkv, ql, kvl), v_part = Rows(s.qkv, ql + kvl, kvl);
      const size_t offset = k_part.size() / plan.kv_heads_local * plan.kv_head_begin;
      std::copy(k_part.begin(), k_part.end(), k.begin() + offset);
      std::copy(v_part.begin(), v_part.end(), v.begin() + offset);
      const Bytes k_full = full(p + "self_attn.k_proj.weight");
      EXPECT_EQ(k_part, Bytes(k_full.begin() + offset, k_full.begin() + offset + k_part.size()));
      for (int64_t h = 0; h < plan.kv_heads_local; ++h) ++kv_covered[plan.kv_head_begin + h];

      const Bytes gate_part = Rows(s.gate_up, 0, il), up_part = Rows(s.gate_up, il, il);
      gate.insert(gate.end(), gate_part.begin(), gate_part.end());
      up.insert(up.end(), up_part.begin(), up_part.end());
    }
    // Row-parallel weights: row i of the original is row i of every rank, side by side.
    for (int64_t row = 0; row < c.hidden_size; ++row) {
      for (int r = 0; r < tp; ++r) {
        const LlamaLayerShard& s = loaded.shards[r].layers[l];
        AppendColumns(s.o_proj, row, 0, s.o_proj.shape[1], &o);
        AppendColumns(s.down, row, 0, s.down.shape[1], &down);
      }
    }
    EXPECT_EQ(q, full(p + "self_attn.q_proj.weight"));
    EXPECT_EQ(k, full(p + "self_attn.k_proj.weight"));
    EXPECT_EQ(v, full(p + "self_attn.v_proj.weight"));
    for (int covered : kv_covered) EXPECT_GE(covered, 1);
    EXPECT_EQ(o, full(p + "self_attn.o_proj.weight"));
    EXPECT_EQ(gate, full(p + "mlp.gate_proj.weight"));
    EXPECT_EQ(up, full(p + "mlp.up_proj.weight"));
    EXPECT_EQ(down, full(p + "mlp.down_proj.weight"));
  }

  // Vocab-parallel: real rows back to back, then zero padding.
  Bytes embed, lm_head;
  for (int r = 0; r < tp; ++r) {
    const parallel::ShardPlan& plan = loaded.plans[r];
    const LlamaShardWeights& w = loaded.shards[r];
    ASSERT_EQ(w.embed.shape, (std::vector<int64_t>{plan.vocab_local, c.hidden_size}));
    ASSERT_EQ(w.lm_head.shape, (std::vector<int64_t>{plan.vocab_local, c.hidden_size}));
    const int64_t real = plan.vocab_end - plan.vocab_begin;
    for (const auto& [tensor, out] :
         {std::pair{&w.embed, &embed}, std::pair{&w.lm_head, &lm_head}}) {
      const Bytes rows = Rows(*tensor, 0, real);
      out->insert(out->end(), rows.begin(), rows.end());
      const Bytes padding = Rows(*tensor, real, plan.vocab_local - real);
      EXPECT_TRUE(std::all_of(padding.begin(), padding.end(), [](uint8_t b) { return b == 0; }));
    }
    EXPECT_EQ(w.final_norm.bytes, full("model.norm.weight"));
    EXPECT_EQ(w.layers.size(), static_cast<size_t>(c.num_hidden_layers));
  }
  EXPECT_EQ(embed, full("model.embed_tokens.weight"));
  EXPECT_EQ(lm_head, full(c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight"));
}

class ShardRoundTripTest : public ::testing::TestWithParam<int> {};

TEST_P(ShardRoundTripTest, SingleFileFloat32Gqa) {
  const int tp = GetParam();
  const std::string dir = testing::MakeTempDir(absl::StrCat("round_trip_f32_", tp));
  SyntheticModel model;  // 4 heads, 2 KV heads (replicated at tp 4), vocab 10 (padded at tp 4)
  testing::WriteSyntheticModel(dir, model);
  auto config = LoadLlamaConfig(dir);
  ASSERT_TRUE(config.ok()) << config.status();
  auto checkpoint = Checkpoint::Open(dir);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  Loaded loaded;
  LoadAllRanks(*checkpoint, *config, tp, &loaded);
  ASSERT_EQ(loaded.shards.size(), static_cast<size_t>(tp));
  EXPECT_EQ(loaded.shards[0].embed.dtype, WeightDType::kF32);
  ExpectShardsReassemble(*checkpoint, loaded);
}

TEST_P(ShardRoundTripTest, ShardedBFloat16TiedMqa) {
  const int tp = GetParam();
  const std::string dir = testing::MakeTempDir(absl::StrCat("round_trip_bf16_", tp));
  SyntheticModel model;
  model.kv_heads = 1;
  model.heads = 8;
  model.vocab = 11;
  model.tied = true;
  model.dtype = "BF16";
  model.num_files = 3;
  testing::WriteSyntheticModel(dir, model);
  ASSERT_TRUE(std::filesystem::exists(dir + "/model.safetensors.index.json"));
  auto config = LoadLlamaConfig(dir);
  ASSERT_TRUE(config.ok()) << config.status();
  auto checkpoint = Checkpoint::Open(dir);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(checkpoint->num_files(), 3u);
  Loaded loaded;
  LoadAllRanks(*checkpoint, *config, tp, &loaded);
  ASSERT_EQ(loaded.shards.size(), static_cast<size_t>(tp));
  EXPECT_EQ(loaded.shards[0].layers[0].qkv.dtype, WeightDType::kBF16);
  ExpectShardsReassemble(*checkpoint, loaded);
}

INSTANTIATE_TEST_SUITE_P(Tp, ShardRoundTripTest, ::testing::Values(1, 2, 4),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return absl::StrCat("tp", info.param);
                         });

// Writes `tensors` as a model with `model`'s config and tries to load rank 0 of tp 1.
absl::Status LoadWith(const std::string& name, const SyntheticModel& model,
                      const std::vector<testing::TensorSpec>& tensors) {
  const std::string dir = testing::MakeTempDir(name);
  testing::WriteFile(dir + "/config.json", testing::SyntheticConfigJson(model));
  testing::WriteFile(dir + "/model.safetensors", testing::SafetensorsBytes(tensors));
  PAGEDLLM_ASSIGN_OR_RETURN(LlamaConfig config, LoadLlamaConfig(dir));
  PAGEDLLM_ASSIGN_OR_RETURN(Checkpoint checkpoint, Checkpoint::Open(dir));
  PAGEDLLM_ASSIGN_OR_RETURN(parallel::ShardPlan plan,
                            parallel::MakeShardPlan(ModelDimsOf(config), 0, 1));
  return LoadLlamaShard(checkpoint, config, plan).status();
}

testing::TensorSpec* FindSpec(std::vector<testing::TensorSpec>& tensors, const std::string& name) {
  for (auto& t : tensors) {
    if (t.name == name) return &t;
  }
  ADD_FAILURE() << name;
  return nullptr;
}

TEST(LlamaWeightsTest, ShapeMismatchNamesFileTensorAndShapes) {
  SyntheticModel model;
  auto tensors = testing::SyntheticTensors(model);
  testing::TensorSpec* up = FindSpec(tensors, "model.layers.1.mlp.up_proj.weight");
  up->shape = {12, 9};
  up->bytes.resize(12 * 9 * 4);
  const absl::Status status = LoadWith("bad_shape", model, tensors);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "model.safetensors: tensor model.layers.1.mlp.up_proj.weight has shape [12, 9], "
            "expected [12, 8]");
}

TEST(LlamaWeightsTest, MissingTensorIsNotFound) {
  SyntheticModel model;
  auto tensors = testing::SyntheticTensors(model);
  tensors.erase(std::remove_if(tensors.begin(), tensors.end(),
                               [](const auto& t) {
                                 return t.name == "model.layers.1.self_attn.v_proj.weight";
                               }),
                tensors.end());
  const absl::Status status = LoadWith("missing_tensor", model, tensors);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("tensor model.layers.1.self_attn.v_proj.weight not found"));
}

TEST(LlamaWeightsTest, UntiedModelNeedsLmHead) {
  SyntheticModel model;
  model.write_lm_head = false;
  const absl::Status status = LoadWith("no_lm_head", model, testing::SyntheticTensors(model));
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("lm_head.weight not found and tie_word_embeddings is false"));
}

TEST(LlamaWeightsTest, MixedDTypesKeepEachTensorsDType) {
  SyntheticModel model;
  auto tensors = testing::SyntheticTensors(model);
  testing::TensorSpec* norm = FindSpec(tensors, "model.layers.0.input_layernorm.weight");
  norm->dtype = "BF16";
  norm->bytes.resize(norm->bytes.size() / 2);
  const std::string dir = testing::MakeTempDir("mixed");
  testing::WriteFile(dir + "/config.json", testing::SyntheticConfigJson(model));
  testing::WriteFile(dir + "/model.safetensors", testing::SafetensorsBytes(tensors));
  auto config = LoadLlamaConfig(dir);
  auto checkpoint = Checkpoint::Open(dir);
  ASSERT_TRUE(config.ok() && checkpoint.ok());
  auto layer = LoadLlamaLayerShard(*checkpoint, *config,
                                   *parallel::MakeShardPlan(ModelDimsOf(*config), 0, 1), 0);
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_EQ(layer->input_norm.dtype, WeightDType::kBF16);
  EXPECT_EQ(layer->input_norm.bytes, norm->bytes);
  EXPECT_EQ(layer->qkv.dtype, WeightDType::kF32);

  // Tensors fused into one must agree.
  testing::TensorSpec* k = FindSpec(tensors, "model.layers.1.self_attn.k_proj.weight");
  k->dtype = "F16";
  k->bytes.resize(k->bytes.size() / 2);
  const absl::Status status = LoadWith("mixed_fused", model, tensors);
  EXPECT_THAT(std::string(status.message()), HasSubstr("have different dtypes"));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("model.layers.1.self_attn.k_proj.weight (F16)"));
}

TEST(LlamaWeightsTest, RejectsPlanForAnotherModelAndBadLayer) {
  const std::string dir = testing::MakeTempDir("other_plan");
  SyntheticModel model;
  testing::WriteSyntheticModel(dir, model);
  auto config = LoadLlamaConfig(dir);
  auto checkpoint = Checkpoint::Open(dir);
  ASSERT_TRUE(config.ok() && checkpoint.ok());
  parallel::ModelDims bigger = ModelDimsOf(*config);
  bigger.num_heads *= 2;
  auto plan = parallel::MakeShardPlan(bigger, 0, 1);
  ASSERT_TRUE(plan.ok());
  EXPECT_THAT(std::string(LoadLlamaShard(*checkpoint, *config, *plan).status().message()),
              HasSubstr("does not fit the model config"));
  plan = parallel::MakeShardPlan(ModelDimsOf(*config), 0, 1);
  EXPECT_THAT(std::string(LoadLlamaLayerShard(*checkpoint, *config, *plan, 2).status().message()),
              HasSubstr("layer 2 is not in [0, 2)"));
}

std::string BundledModelDir() {
  const std::string in_repo = std::string(PAGEDLLM_SOURCE_DIR) + "/models/pagedllm-tiny-py";
  if (std::filesystem::exists(in_repo + "/model.safetensors")) return in_repo;
  return "/work/shared/models/pagedllm-tiny-py";
}

class BundledModelTest : public ::testing::TestWithParam<int> {};

TEST_P(BundledModelTest, LoadsShards) {
  const int tp = GetParam();
  const std::string dir = BundledModelDir();
  auto config = LoadLlamaConfig(dir);
  ASSERT_TRUE(config.ok()) << config.status();

  // The fields match config.json itself.
  std::ifstream in(dir + "/config.json");
  const nlohmann::json json = nlohmann::json::parse(in);
  EXPECT_EQ(config->hidden_size, json["hidden_size"].get<int64_t>());
  EXPECT_EQ(config->num_hidden_layers, json["num_hidden_layers"].get<int64_t>());
  EXPECT_EQ(config->num_attention_heads, json["num_attention_heads"].get<int64_t>());
  EXPECT_EQ(config->num_key_value_heads, json["num_key_value_heads"].get<int64_t>());
  EXPECT_EQ(config->intermediate_size, json["intermediate_size"].get<int64_t>());
  EXPECT_EQ(config->vocab_size, json["vocab_size"].get<int64_t>());
  EXPECT_EQ(config->head_dim, json["head_dim"].get<int64_t>());
  EXPECT_EQ(config->tie_word_embeddings, json["tie_word_embeddings"].get<bool>());
  EXPECT_DOUBLE_EQ(config->rms_norm_eps, json["rms_norm_eps"].get<double>());
  EXPECT_EQ(config->hidden_size, 256);
  EXPECT_EQ(config->num_hidden_layers, 6);
  EXPECT_EQ(config->num_attention_heads, 8);
  EXPECT_EQ(config->num_key_value_heads, 4);
  EXPECT_EQ(config->vocab_size, 4096);
  EXPECT_EQ(config->intermediate_size, 704);
  EXPECT_FALSE(config->tie_word_embeddings);

  auto checkpoint = Checkpoint::Open(dir);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(checkpoint->names().size(), 57u);
  Loaded loaded;
  LoadAllRanks(*checkpoint, *config, tp, &loaded);
  ASSERT_EQ(loaded.shards.size(), static_cast<size_t>(tp));
  for (const LlamaShardWeights& w : loaded.shards) {
    ASSERT_EQ(w.layers.size(), 6u);
    EXPECT_EQ(w.embed.shape, (std::vector<int64_t>{4096 / tp, 256}));
    EXPECT_EQ(w.lm_head.shape, (std::vector<int64_t>{4096 / tp, 256}));
    EXPECT_EQ(w.final_norm.shape, (std::vector<int64_t>{256}));
    const LlamaLayerShard& layer = w.layers[5];
    EXPECT_EQ(layer.qkv.shape, (std::vector<int64_t>{(8 / tp + 2 * 4 / tp) * 32, 256}));
    EXPECT_EQ(layer.o_proj.shape, (std::vector<int64_t>{256, 8 / tp * 32}));
    EXPECT_EQ(layer.gate_up.shape, (std::vector<int64_t>{2 * 704 / tp, 256}));
    EXPECT_EQ(layer.down.shape, (std::vector<int64_t>{256, 704 / tp}));
    EXPECT_EQ(layer.input_norm.shape, (std::vector<int64_t>{256}));
    EXPECT_EQ(layer.qkv.dtype, WeightDType::kF32);
  }
  ExpectShardsReassemble(*checkpoint, loaded);
}

INSTANTIATE_TEST_SUITE_P(Tp, BundledModelTest, ::testing::Values(1, 2),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return absl::StrCat("tp", info.param);
                         });

}  // namespace
}  // namespace pagedllm::worker
