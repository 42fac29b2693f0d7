// The BPE model on toy vocabularies: merge order, byte fallback, unk, ignore_merges, both merge
// spellings, and the scan and heap merge loops agreeing.
#include "text/tokenizer/bpe_model.h"

#include <random>

#include "gtest/gtest.h"
#include "tests/text/tokenizer/toy_tokenizers.h"

namespace pagedllm::tokenizer {
namespace {

using testing::ByteLevelJson;
using testing::MakeTokenizer;
using testing::SentencePieceJson;

std::vector<int32_t> Encode(const Tokenizer& tokenizer, const std::string& text) {
  auto ids = tokenizer.Encode(text, false);
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : std::vector<int32_t>{};
}

TEST(BpeModelTest, LowestRankMergesFirst) {
  // "abc": (b,c) has rank 0, so "a" + "bc" although (a,b) also exists.
  auto tok = MakeTokenizer(ByteLevelJson({{"b", "c"}, {"a", "b"}}));
  const int32_t bc = tok->TokenToId("bc").value(), ab = tok->TokenToId("ab").value();
  EXPECT_EQ(Encode(*tok, "abc"), (std::vector<int32_t>{'a', bc}));
  EXPECT_EQ(Encode(*tok, "abd"), (std::vector<int32_t>{ab, 'd'}));
}

TEST(BpeModelTest, EqualRanksMergeLeftmostFirst) {
  // "aaa" with (a,a): the left pair merges, leaving "aa" + "a".
  auto tok = MakeTokenizer(ByteLevelJson({{"a", "a"}, {"aa", "aa"}}));
  const int32_t aa = tok->TokenToId("aa").value(), aaaa = tok->TokenToId("aaaa").value();
  EXPECT_EQ(Encode(*tok, "aaa"), (std::vector<int32_t>{aa, 'a'}));
  EXPECT_EQ(Encode(*tok, "aaaaa"), (std::vector<int32_t>{aaaa, 'a'}));
}

TEST(BpeModelTest, ByteLevelPiecesAreRawBytes) {
  // The space merges with the following word (its vocabulary entry is "Ġt").
  auto tok = MakeTokenizer(ByteLevelJson({{" ", "t"}, {"h", "e"}, {" t", "he"}}));
  const int32_t the = tok->TokenToId("\xC4\xA0the").value();  // "Ġthe"
  EXPECT_EQ(Encode(*tok, " the"), (std::vector<int32_t>{the}));
  EXPECT_EQ(tok->Decode({the, 'x'}, false).value(), " thex");
  // A character outside ASCII is its UTF-8 bytes.
  EXPECT_EQ(Encode(*tok, "\xC3\xA9"), (std::vector<int32_t>{0xC3, 0xA9}));
}

TEST(BpeModelTest, IgnoreMergesTakesWholeVocabularyWords) {
  // "abc" is in the vocabulary but unreachable by merges (only (a,b) then (ab,c)... absent).
  nlohmann::json json = ByteLevelJson({{"b", "c"}, {"a", "b"}}, true, /*ignore_merges=*/true);
  json["model"]["vocab"]["abc"] = 1000;
  auto tok = MakeTokenizer(json);
  EXPECT_EQ(Encode(*tok, "abc"), (std::vector<int32_t>{1000}));
  json["model"]["ignore_merges"] = false;
  tok = MakeTokenizer(json);
  EXPECT_EQ(Encode(*tok, "abc"), (std::vector<int32_t>{'a', tok->TokenToId("bc").value()}));
}

TEST(BpeModelTest, ByteFallbackAndUnknown) {
  auto tok = MakeTokenizer(SentencePieceJson({"\xE2\x96\x81", "a", "b"}, {{"\xE2\x96\x81", "a"}}));
  const int32_t space_a = tok->TokenToId(
                                 "\xE2\x96\x81"
                                 "a")
                              .value();
  // "a你": "▁a" + the three bytes of 你 (E4 BD A0) as <0xNN> tokens.
  EXPECT_EQ(Encode(*tok, "a\xE4\xBD\xA0"),
            (std::vector<int32_t>{space_a, 3 + 0xE4, 3 + 0xBD, 3 + 0xA0}));
  EXPECT_EQ(tok->Decode(Encode(*tok, "a\xE4\xBD\xA0"), false).value(), "a\xE4\xBD\xA0");

  // Without byte fallback the character is <unk>, and consecutive unknowns fuse (fuse_unk).
  nlohmann::json json = SentencePieceJson({"\xE2\x96\x81", "a"}, {{"\xE2\x96\x81", "a"}});
  json["model"]["byte_fallback"] = false;
  tok = MakeTokenizer(json);
  EXPECT_EQ(Encode(*tok, "a\xE4\xBD\xA0\xE5\xA5\xBD"),
            (std::vector<int32_t>{tok->TokenToId("\xE2\x96\x81"
                                                 "a")
                                      .value(),
                                  0}));
}

TEST(BpeModelTest, BothMergeSpellingsGiveTheSameModel) {
  nlohmann::json pairs = SentencePieceJson({"\xE2\x96\x81", "a", "b"}, {{"\xE2\x96\x81", "a"},
                                                                        {"\xE2\x96\x81"
                                                                         "a",
                                                                         "b"}});
  nlohmann::json strings = pairs;
  strings["model"]["merges"] = {"\xE2\x96\x81 a",
                                "\xE2\x96\x81"
                                "a b"};
  auto a = MakeTokenizer(pairs), b = MakeTokenizer(strings);
  EXPECT_EQ(Encode(*a, "ab ab ba"), Encode(*b, "ab ab ba"));
  EXPECT_EQ(Encode(*a, "ab").size(), 1u);
}

TEST(BpeModelTest, MergesOfUnknownTokensFailToLoad) {
  nlohmann::json json = ByteLevelJson({});
  json["model"]["merges"] = {"\xC4\xA0 zz"};
  auto tok = Tokenizer::FromJson(json.dump(), "");
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(tok.status().message().find("model.merges[0]"), std::string::npos) << tok.status();
}

TEST(BpeModelTest, ScanAndHeapMergeLoopsAgree) {
  // A vocabulary with many overlapping merges over a 4-letter alphabet.
  std::vector<std::pair<std::string, std::string>> merges;
  std::mt19937 rng(11);
  std::vector<std::string> tokens = {"a", "b", "c", "d"};
  for (int i = 0; i < 60; ++i) {
    const std::string& l = tokens[rng() % tokens.size()];
    const std::string& r = tokens[rng() % tokens.size()];
    if (l.size() + r.size() > 6) continue;
    merges.push_back({l, r});
    tokens.push_back(l + r);
  }
  auto parsed = BpeModel::Parse(ByteLevelJson(merges)["model"], {"tokenizer.json", "model"}, true);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  for (int trial = 0; trial < 500; ++trial) {
    std::vector<int32_t> word;
    const int n = 1 + static_cast<int>(rng() % 120);
    for (int i = 0; i < n; ++i) word.push_back('a' + static_cast<int32_t>(rng() % 4));
    std::vector<int32_t> scan = word, heap = word;
    (*parsed)->MergeForTest(&scan, false);
    (*parsed)->MergeForTest(&heap, true);
    ASSERT_EQ(scan, heap) << "word of " << n << " symbols";
  }
}

}  // namespace
}  // namespace pagedllm::tokenizer
