// Text in, text out through the whole cluster with the bundled model's tokenizer.json: text
// prompts give transformers' token ids and text (golden.json), every chunk is whole UTF-8 and the
// chunks add up to the full text, stop strings end the text on their first match (across
// tokens and chunks), Tokenize / Detokenize answer, and bad text is refused by byte offset.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/e2e/cluster.h"
#include "tests/e2e/e2e_util.h"

namespace pagedllm::testing {
namespace {

std::string ModelDir() { return SourceDir() + "/models/pagedllm-tiny-py"; }

// Whether `text` is well-formed UTF-8 (no truncated or overlong sequences, no surrogates).
bool IsValidUtf8(const std::string& text) {
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    int length = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    if (length == 0 || i + length > text.size()) return false;
    uint32_t code = length == 1 ? c : c & (0x7F >> length);
    for (int k = 1; k < length; ++k) {
      const unsigned char next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    const uint32_t min_code[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < min_code[length] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
      return false;
    }
    i += length;
  }
  return true;
}

pagedllm::v1::GenerateRequest TextRequest(const std::string& prompt, int max_tokens) {
  pagedllm::v1::GenerateRequest request;
  request.set_text(prompt);
  request.mutable_sampling()->set_max_tokens(max_tokens);
  request.mutable_sampling()->set_temperature(0.0f);
  return request;
}

class TextServingTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    golden_ = new nlohmann::json(LoadJson(ModelDir() + "/golden.json"));
    auto cluster = Cluster::Start(ClusterOptions(ModelDir(), 1));
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = cluster->release();
  }
  static void TearDownTestSuite() {
    if (cluster_ != nullptr) {
      EXPECT_TRUE(cluster_->WaitForAllBlocksFree().ok());
      const absl::Status stopped = cluster_->Stop();
      EXPECT_TRUE(stopped.ok()) << stopped;
      delete cluster_;
    }
    delete golden_;
  }

  static nlohmann::json* golden_;
  static Cluster* cluster_;
};

nlohmann::json* TextServingTest::golden_ = nullptr;
Cluster* TextServingTest::cluster_ = nullptr;

TEST_F(TextServingTest, TextPromptsGiveTransformersTokensAndText) {
  std::vector<pagedllm::v1::GenerateRequest> requests;
  for (const auto& test_case : (*golden_)["cases"]) {
    requests.push_back(TextRequest(test_case["prompt"], (*golden_)["max_new_tokens"].get<int>()));
  }
  const std::vector<GenerateOutcome> outcomes = GenerateConcurrently(cluster_->stub(), requests);
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const auto& test_case = (*golden_)["cases"][i];
    SCOPED_TRACE(test_case["prompt"].get<std::string>());
    ASSERT_TRUE(outcomes[i].status.ok()) << outcomes[i].status.error_message();
    EXPECT_EQ(outcomes[i].token_ids, test_case["continuation_ids"].get<std::vector<int32_t>>());
    EXPECT_EQ(outcomes[i].text(), test_case["continuation_text"].get<std::string>());
    EXPECT_GT(outcomes[i].num_chunks, 1);
    for (size_t c = 0; c < outcomes[i].texts.size(); ++c) {
      EXPECT_TRUE(IsValidUtf8(outcomes[i].texts[c])) << "chunk " << c;
    }
  }
}

TEST_F(TextServingTest, TokenizeAndDetokenizeMatchTransformers) {
  for (const auto& test_case : (*golden_)["cases"]) {
    grpc::ClientContext tokenize_context;
    pagedllm::v1::TokenizeRequest tokenize;
    tokenize.set_text(test_case["prompt"].get<std::string>());
    tokenize.set_add_special_tokens(true);
    pagedllm::v1::TokenizeResponse ids;
    ASSERT_TRUE(cluster_->stub().Tokenize(&tokenize_context, tokenize, &ids).ok());
    EXPECT_EQ(std::vector<int32_t>(ids.ids().begin(), ids.ids().end()),
              test_case["prompt_ids"].get<std::vector<int32_t>>());

    grpc::ClientContext detokenize_context;
    pagedllm::v1::DetokenizeRequest detokenize;
    for (int32_t id : test_case["continuation_ids"]) detokenize.add_ids(id);
    detokenize.set_skip_special_tokens(true);
    pagedllm::v1::DetokenizeResponse text;
    ASSERT_TRUE(cluster_->stub().Detokenize(&detokenize_context, detokenize, &text).ok());
    EXPECT_EQ(text.text(), test_case["continuation_text"].get<std::string>());
  }
}

TEST_F(TextServingTest, StopStringEndsTheTextAtItsFirstMatch) {
  const auto& test_case = (*golden_)["cases"][0];
  const std::string full = test_case["continuation_text"];
  const auto ids = test_case["continuation_ids"].get<std::vector<int32_t>>();
  // A stop string that starts inside one token and ends inside a later one.
  const std::string stop = full.substr(13, 12);
  const size_t at = full.find(stop);
  ASSERT_EQ(at, 13u);
  for (bool include : {false, true}) {
    SCOPED_TRACE(absl::StrCat("include_stop_str_in_output ", include, ", stop \"", stop, "\""));
    pagedllm::v1::GenerateRequest request = TextRequest(test_case["prompt"], 64);
    request.mutable_sampling()->add_stop("never appears \xF0\x9F\x92\xA5");
    request.mutable_sampling()->add_stop(stop);
    request.mutable_sampling()->set_include_stop_str_in_output(include);
    const GenerateOutcome outcome = Generate(cluster_->stub(), request);
    ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
    EXPECT_EQ(outcome.finish_reason, pagedllm::v1::FINISH_REASON_STOP);
    EXPECT_EQ(outcome.text(), full.substr(0, include ? at + stop.size() : at));
    // The tokens end with the one that completed the stop string: a prefix of the golden ids
    // whose text reaches past the stop string's end, one token shorter does not.
    ASSERT_FALSE(outcome.token_ids.empty());
    ASSERT_LE(outcome.token_ids.size(), ids.size());
    EXPECT_EQ(outcome.token_ids,
              std::vector<int32_t>(ids.begin(), ids.begin() + outcome.token_ids.size()));
    EXPECT_LT(outcome.token_ids.size(), 12u);
  }
}

// Text that cannot fit max_model_len whatever it encodes to is refused before it is tokenized,
// naming the field (a 10 MB prompt used to get the transport's RESOURCE_EXHAUSTED, and 4 MB
// Tokenize calls were tokenized in full, slowing everyone down).
TEST_F(TextServingTest, OversizedTextIsRefusedBeforeTokenizing) {
  const std::string huge(10 << 20, 'a');
  const auto started = std::chrono::steady_clock::now();
  const GenerateOutcome outcome = Generate(cluster_->stub(), TextRequest(huge, 4));
  EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(outcome.status.error_message().find("prompt.text has 10485760 bytes"),
            std::string::npos)
      << outcome.status.error_message();
  EXPECT_NE(outcome.status.error_message().find("max_model_len 1024"), std::string::npos);

  grpc::ClientContext context;
  pagedllm::v1::TokenizeRequest tokenize;
  tokenize.set_text(std::string(4 << 20, 'b'));
  pagedllm::v1::TokenizeResponse ids;
  const grpc::Status status = cluster_->stub().Tokenize(&context, tokenize, &ids);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("text has 4194304 bytes"), std::string::npos)
      << status.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
}

TEST_F(TextServingTest, BadTextIsRefusedByByteOffset) {
  // Raw bytes that are not UTF-8: refused, naming where.
  pagedllm::v1::GenerateRequest request = TextRequest("", 4);
  request.set_text_bytes("abc\xC3(def");
  const GenerateOutcome outcome = Generate(cluster_->stub(), request);
  EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(outcome.status.error_message().find("prompt.text_bytes"), std::string::npos)
      << outcome.status.error_message();
  EXPECT_NE(outcome.status.error_message().find("byte offset 3"), std::string::npos)
      << outcome.status.error_message();
  // The same bytes in the `string` field never reach the handler (protobuf refuses to parse
  // them); the call fails and the server goes on serving.
  const GenerateOutcome in_string = Generate(cluster_->stub(), TextRequest("abc\xC3(def", 4));
  EXPECT_FALSE(in_string.status.ok());
  // Valid raw bytes work like text.
  pagedllm::v1::GenerateRequest valid = TextRequest("", 4);
  valid.set_text_bytes("def f\xC3\xA9(n):");
  const GenerateOutcome served = Generate(cluster_->stub(), valid);
  ASSERT_TRUE(served.status.ok()) << served.status.error_message();
  EXPECT_EQ(served.token_ids.size(), 4u);

  pagedllm::v1::GenerateRequest empty_stop = TextRequest("def", 4);
  empty_stop.mutable_sampling()->add_stop("");
  const GenerateOutcome refused = Generate(cluster_->stub(), empty_stop);
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(refused.status.error_message().find("sampling.stop[0]"), std::string::npos)
      << refused.status.error_message();

  grpc::ClientContext context;
  pagedllm::v1::DetokenizeRequest detokenize;
  detokenize.add_ids(5);
  detokenize.add_ids(1 << 20);
  pagedllm::v1::DetokenizeResponse text;
  const grpc::Status status = cluster_->stub().Detokenize(&context, detokenize, &text);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("1048576"), std::string::npos) << status.error_message();
}

TEST(TextServingWithoutTokenizerTest, TokenIdsStillWork) {
  ClusterOptions options(ModelDir(), 1);
  options.extra_flags = {"--tokenizer=none"};
  auto cluster = Cluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const GenerateOutcome text = Generate((*cluster)->stub(), TextRequest("def", 4));
  EXPECT_EQ(text.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(text.status.error_message().find("prompt.text"), std::string::npos);
  const GenerateOutcome ids = Generate((*cluster)->stub(), GreedyRequest({0, 476, 290}, 4));
  ASSERT_TRUE(ids.status.ok()) << ids.status.error_message();
  EXPECT_EQ(ids.token_ids.size(), 4u);
  EXPECT_EQ(ids.text(), "");
  EXPECT_TRUE((*cluster)->Stop().ok());
}

TEST(TextServingWithoutTokenizerTest, BrokenTokenizerStopsStartUpNamingIt) {
  const std::string dir = ::testing::TempDir() + "/broken-tokenizer";
  ASSERT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  {
    std::ofstream(dir + "/tokenizer.json")
        << R"({"model": {"type": "WordPiece", "vocab": {}}, "added_tokens": []})";
  }
  ClusterOptions options(ModelDir(), 1);
  options.extra_flags = {"--tokenizer=" + dir};
  auto cluster = Cluster::Start(options);
  ASSERT_FALSE(cluster.ok());
  EXPECT_NE(std::string(cluster.status().message()).find("WordPiece"), std::string::npos)
      << cluster.status();
}

}  // namespace
}  // namespace pagedllm::testing
