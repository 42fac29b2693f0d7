// The Tokenizer facade on toy tokenizer.json files: added tokens (lstrip / rstrip / single_word /
// normalized), special tokens around the text, errors for bad input and unsupported files,
// normalizers and the Metaspace pre-tokenizer.
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/text/tokenizer/toy_tokenizers.h"

namespace pagedllm::tokenizer {
namespace {

using testing::AddedTokenJson;
using testing::ByteLevelJson;
using testing::MakeTokenizer;
using testing::SentencePieceJson;

std::vector<int32_t> Encode(const Tokenizer& tokenizer, const std::string& text,
                            bool add_special_tokens = false) {
  auto ids = tokenizer.Encode(text, add_special_tokens);
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : std::vector<int32_t>{};
}

nlohmann::json WithAddedTokens(nlohmann::json json, std::vector<nlohmann::json> tokens) {
  for (auto& t : tokens) json["added_tokens"].push_back(std::move(t));
  return json;
}

TEST(TokenizerTest, AddedTokensAreNeverSplitAndLongestWins) {
  auto tok =
      MakeTokenizer(WithAddedTokens(ByteLevelJson({}), {AddedTokenJson(300, "<|a|>", true),
                                                        AddedTokenJson(301, "<|a|>x", false)}));
  EXPECT_EQ(Encode(*tok, "q<|a|>x<|a|>"), (std::vector<int32_t>{'q', 301, 300}));
  EXPECT_EQ(tok->vocab_size(), 302);
  EXPECT_TRUE(tok->IsSpecial(300));
  EXPECT_FALSE(tok->IsSpecial(301));
  EXPECT_FALSE(tok->IsSpecial('q'));
  EXPECT_EQ(tok->Decode({'q', 300, 301}, false).value(), "q<|a|><|a|>x");
  EXPECT_EQ(tok->Decode({'q', 300, 301}, true).value(), "q<|a|>x");
}

TEST(TokenizerTest, LstripAndRstripSwallowNeighbouringWhitespace) {
  auto tok = MakeTokenizer(WithAddedTokens(
      ByteLevelJson({}, /*use_regex=*/false),
      {AddedTokenJson(300, "<L>", true, /*lstrip=*/true), AddedTokenJson(301, "<R>", true, false,
                                                                         /*rstrip=*/true)}));
  EXPECT_EQ(Encode(*tok, "a \t <L> b"), (std::vector<int32_t>{'a', 300, ' ', 'b'}));
  EXPECT_EQ(Encode(*tok, "a <R> \n b"), (std::vector<int32_t>{'a', ' ', 301, 'b'}));
  EXPECT_EQ(Encode(*tok, "   <L><R>   "), (std::vector<int32_t>{300, 301}));
}

// Broken files are refused naming the file and where: JSON syntax by line and column, an id
// too large to index (it used to end in bad_alloc) by its field.
TEST(TokenizerTest, BrokenFilesNameTheFileAndWhere) {
  auto syntax = Tokenizer::FromJson("{\n  \"model\": {\n    \"type\": \"BPE\",,\n  }\n}", "");
  ASSERT_FALSE(syntax.ok());
  EXPECT_EQ(syntax.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(syntax.status().message()),
              ::testing::HasSubstr("tokenizer.json: not valid JSON"));
  EXPECT_THAT(std::string(syntax.status().message()), ::testing::HasSubstr("at line 3, column 19"));

  nlohmann::json huge_id = ByteLevelJson({}, false);
  huge_id["model"]["vocab"]["zz"] = 2000000000;
  auto vocab = Tokenizer::FromJson(huge_id.dump(), "");
  ASSERT_FALSE(vocab.ok());
  EXPECT_THAT(std::string(vocab.status().message()),
              ::testing::HasSubstr("entry \"zz\" has id 2000000000; ids above 4194303"));
  EXPECT_THAT(std::string(vocab.status().message()), ::testing::HasSubstr("tokenizer.json"));

  auto added = Tokenizer::FromJson(
      WithAddedTokens(ByteLevelJson({}, false), {AddedTokenJson(2000000000, "<x>", true)}).dump(),
      "");
  ASSERT_FALSE(added.ok());
  EXPECT_THAT(std::string(added.status().message()),
              ::testing::HasSubstr("is 2000000000; ids above 4194303 are not supported"));
}

// The bound the server refuses oversized text by: the longest spelling, none once an added
// token may absorb any amount of whitespace.
TEST(TokenizerTest, MaxTokenTextBytesBoundsWhatATokenStandsFor) {
  auto plain = MakeTokenizer(WithAddedTokens(ByteLevelJson({{"a", "b"}, {"ab", "c"}}, false),
                                             {AddedTokenJson(300, "<|longer|>", true)}));
  EXPECT_EQ(plain->max_token_text_bytes(), std::string("<|longer|>").size());
  // The longest spelling ten times over is the fewest tokens that many bytes can be.
  std::string text;
  for (int i = 0; i < 10; ++i) text += "<|longer|>";
  ASSERT_EQ(text.size(), 10 * plain->max_token_text_bytes());
  EXPECT_GE(Encode(*plain, text).size(), 10u);
  auto stripping = MakeTokenizer(WithAddedTokens(
      ByteLevelJson({}, false), {AddedTokenJson(300, "<L>", true, /*lstrip=*/true)}));
  EXPECT_EQ(stripping->max_token_text_bytes(), 0u);
}

TEST(TokenizerTest, SingleWordTokensMatchOnlyBetweenNonWordCharacters) {
  auto tok = MakeTokenizer(
      WithAddedTokens(ByteLevelJson({}, false),
                      {AddedTokenJson(300, "cat", false, false, false, /*single_word=*/true)}));
  EXPECT_EQ(Encode(*tok, "a cat."), (std::vector<int32_t>{'a', ' ', 300, '.'}));
  EXPECT_EQ(Encode(*tok, "concat"), (std::vector<int32_t>{'c', 'o', 'n', 'c', 'a', 't'}));
}

TEST(TokenizerTest, NormalizedAddedTokensMatchAfterNormalization) {
  // With an NFC normalizer, a normalized added token "é" also matches "e" + U+0301.
  nlohmann::json json = WithAddedTokens(
      ByteLevelJson({}, false),
      {AddedTokenJson(300, "\xC3\xA9", false, false, false, false, /*normalized=*/true)});
  json["normalizer"] = {{"type", "NFC"}};
  auto tok = MakeTokenizer(json);
  EXPECT_EQ(Encode(*tok, "xe\xCC\x81y"), (std::vector<int32_t>{'x', 300, 'y'}));
}

TEST(TokenizerTest, NfcNormalizerComposes) {
  nlohmann::json json = ByteLevelJson({}, false);
  json["normalizer"] = {{"type", "NFC"}};
  auto tok = MakeTokenizer(json);
  // e + U+0301 -> U+00E9; d + U+0307 + U+0323 -> U+1E0D U+0307 (reordered, then composed).
  EXPECT_EQ(Encode(*tok, "e\xCC\x81"), Encode(*tok, "\xC3\xA9"));
  EXPECT_EQ(Encode(*tok, "ad\xCC\x87\xCC\xA3z"), Encode(*tok, "a\xE1\xB8\x8D\xCC\x87z"));
  EXPECT_EQ(Encode(*tok, "\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB"), Encode(*tok, "\xED\x95\x9C"));
  // Starters that compose with the character before them: Bengali U+09C7 U+09BE -> U+09CB.
  EXPECT_EQ(Encode(*tok, "x\xE0\xA7\x87\xE0\xA6\xBE"), Encode(*tok, "x\xE0\xA7\x8B"));
}

TEST(TokenizerTest, SpecialTokensFromTemplateOrConfig) {
  nlohmann::json json = SentencePieceJson({"\xE2\x96\x81", "a"}, {{"\xE2\x96\x81", "a"}});
  const nlohmann::json config = {{"add_bos_token", true},
                                 {"add_eos_token", true},
                                 {"bos_token", "<s>"},
                                 {"eos_token", {{"content", "</s>"}}}};
  auto tok = MakeTokenizer(json, config);
  const int32_t a = tok->TokenToId(
                           "\xE2\x96\x81"
                           "a")
                        .value();
  EXPECT_EQ(Encode(*tok, "a", true), (std::vector<int32_t>{1, a, 2}));
  EXPECT_EQ(Encode(*tok, "a", false), (std::vector<int32_t>{a}));
  EXPECT_EQ(tok->bos_token_id(), 1);
  EXPECT_EQ(tok->eos_token_id(), 2);

  // A TemplateProcessing post-processor takes precedence over the config flags.
  json["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single",
       {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}};
  tok = MakeTokenizer(json, config);
  EXPECT_EQ(Encode(*tok, "a", true), (std::vector<int32_t>{1, a}));
}

TEST(TokenizerTest, SentencePieceRoundTripAndStrip) {
  auto tok = MakeTokenizer(SentencePieceJson({"\xE2\x96\x81", "a", "b"},
                                             {{"\xE2\x96\x81", "a"}, {"\xE2\x96\x81", "b"}}));
  const std::vector<int32_t> ids = Encode(*tok, "a  b");
  EXPECT_EQ(tok->Decode(ids, false).value(), "a  b");  // one leading space stripped, not two
  EXPECT_EQ(tok->Decode({1, ids[0]}, false).value(), "<s> a");
  EXPECT_EQ(tok->Decode({1, ids[0]}, true).value(), "a");
}

TEST(TokenizerTest, InvalidUtf8NamesTheOffset) {
  auto tok = MakeTokenizer(ByteLevelJson({}));
  auto ids = tok->Encode("ok so far \xE4\xB8 broken", false);
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ids.status().message(), "prompt is not valid UTF-8 at byte offset 10");
}

TEST(TokenizerTest, DecodeRejectsIdsOutsideTheVocabulary) {
  auto tok = MakeTokenizer(ByteLevelJson({}));
  auto text = tok->Decode({'a', 256, 'b'}, false);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(text.status().message().find("256"), std::string::npos);
  EXPECT_FALSE(tok->Decode({-1}, false).ok());
  // Bytes that are not UTF-8 decode to U+FFFD.
  EXPECT_EQ(tok->Decode({'a', 0xE4, 0xB8, 'b'}, false).value(),
            "a\xEF\xBF\xBD"
            "b");
}

TEST(TokenizerTest, UnsupportedComponentsFailToLoadNamingThem) {
  struct Case {
    const char* field;
    nlohmann::json value;
    const char* message;
  };
  const Case cases[] = {
      {"pre_tokenizer",
       {{"type", "Digits"}, {"individual_digits", true}},
       "tokenizer.json: pre_tokenizer.type \"Digits\" is not supported"},
      {"normalizer",
       {{"type", "Sequence"}, {"normalizers", {{{"type", "Lowercase"}}}}},
       "tokenizer.json: normalizer.normalizers[0].type \"Lowercase\" is not supported"},
      {"decoder", {{"type", "WordPiece"}}, "decoder layout [WordPiece] is not supported"},
      {"model",
       {{"type", "Unigram"}, {"vocab", nlohmann::json::array()}},
       "tokenizer.json: model.type \"Unigram\" is not supported"},
      {"pre_tokenizer",
       {{"type", "Split"}, {"pattern", {{"Regex", "\\w+"}}}, {"behavior", "Isolated"}},
       "pre_tokenizer.pattern.Regex: the pattern construct \"\\w\""},
      {"pre_tokenizer",
       {{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "MergedWithPrevious"}},
       "pre_tokenizer.behavior \"MergedWithPrevious\" is not supported"},
  };
  for (const Case& c : cases) {
    nlohmann::json json = ByteLevelJson({});
    json[c.field] = c.value;
    auto tok = Tokenizer::FromJson(json.dump(), "");
    ASSERT_FALSE(tok.ok()) << c.message;
    EXPECT_EQ(tok.status().code(), absl::StatusCode::kUnimplemented) << tok.status();
    EXPECT_NE(tok.status().message().find(c.message), std::string::npos) << tok.status();
  }
  auto config = Tokenizer::FromJson(ByteLevelJson({}).dump(), R"({"split_special_tokens": true})");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("tokenizer_config.json: split_special_tokens"),
            std::string::npos);
}

TEST(TokenizerTest, LoadReportsMissingAndMalformedFiles) {
  auto missing = Tokenizer::Load("/nonexistent/model");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);

  const std::string dir = std::string(PAGEDLLM_BINARY_DIR) + "/tokenizer_test_model";
  ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
  std::ofstream(dir + "/tokenizer.json") << "{ not json";
  auto malformed = Tokenizer::Load(dir);
  ASSERT_FALSE(malformed.ok());
  EXPECT_EQ(malformed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(malformed.status().message().find("tokenizer.json"), std::string::npos);

  std::ofstream(dir + "/tokenizer.json") << ByteLevelJson({{"h", "i"}}).dump();
  std::ofstream(dir + "/tokenizer_config.json") << R"({"eos_token": "<nope>"})";
  auto bad_eos = Tokenizer::Load(dir);
  ASSERT_FALSE(bad_eos.ok());
  EXPECT_NE(bad_eos.status().message().find("tokenizer_config.json: eos_token"), std::string::npos);
  std::ofstream(dir + "/tokenizer_config.json") << R"({"eos_token": "hi"})";
  auto loaded = Tokenizer::Load(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->eos_token_id(), (*loaded)->TokenToId("hi"));
}

nlohmann::json MetaspaceJson(const std::string& scheme, bool split) {
  nlohmann::json json = SentencePieceJson(
      {"\xE2\x96\x81", "a", "b"}, {{"\xE2\x96\x81", "\xE2\x96\x81"}, {"\xE2\x96\x81", "a"}});
  json["normalizer"] = nullptr;
  json["pre_tokenizer"] = {{"type", "Metaspace"},
                           {"replacement", "\xE2\x96\x81"},
                           {"prepend_scheme", scheme},
                           {"split", split}};
  json["decoder"] = {{"type", "Metaspace"},
                     {"replacement", "\xE2\x96\x81"},
                     {"prepend_scheme", scheme},
                     {"split", split}};
  return json;
}

TEST(TokenizerTest, MetaspacePrependSchemesAndSplit) {
  for (bool split : {false, true}) {
    auto always = MakeTokenizer(MetaspaceJson("always", split));
    const int32_t sa = always
                           ->TokenToId(
                               "\xE2\x96\x81"
                               "a")
                           .value();
    const int32_t ss = always->TokenToId("\xE2\x96\x81\xE2\x96\x81").value();
    const int32_t s = always->TokenToId("\xE2\x96\x81").value();
    EXPECT_EQ(Encode(*always, "a"), (std::vector<int32_t>{sa}));
    EXPECT_EQ(Encode(*always, "<s>a"), (std::vector<int32_t>{1, sa}));
    auto first = MakeTokenizer(MetaspaceJson("first", split));
    EXPECT_EQ(Encode(*first, "a"), (std::vector<int32_t>{sa}));
    EXPECT_EQ(Encode(*first, "<s>a"), (std::vector<int32_t>{1, first->TokenToId("a").value()}));
    auto never = MakeTokenizer(MetaspaceJson("never", split));
    EXPECT_EQ(Encode(*never, "a"), (std::vector<int32_t>{never->TokenToId("a").value()}));
    // "  a" is "▁▁a": with split each "▁" run start begins a piece ("▁" | "▁a"); without,
    // the lower-ranked "▁▁" merges first.
    const int32_t a = always->TokenToId("a").value();
    EXPECT_EQ(Encode(*always, "  a"),
              split ? (std::vector<int32_t>{s, sa}) : (std::vector<int32_t>{ss, a}));
    EXPECT_EQ(always->Decode(Encode(*always, "a a"), false).value(), "a a");
  }
}

}  // namespace
}  // namespace pagedllm::tokenizer
