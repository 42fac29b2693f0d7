// Incremental detokenization (held-back bytes, byte-fallback runs, clean-up rewrites across
// tokens) and the stop-string matcher (matches across chunks, overlapping stop strings).
#include <random>

#include "text/tokenizer/decode_stream.h"
#include "text/tokenizer/incremental_detokenizer.h"
#include "text/tokenizer/stop_string_matcher.h"
#include "text/tokenizer/utf8.h"
#include "gtest/gtest.h"
#include "tests/text/tokenizer/toy_tokenizers.h"

namespace pagedllm::tokenizer {
namespace {

using testing::ByteLevelJson;
using testing::MakeTokenizer;
using testing::SentencePieceJson;

std::vector<std::string> Stream(const Tokenizer& tok, const std::vector<int32_t>& ids,
                                bool skip_special = false) {
  IncrementalDetokenizer detokenizer(tok, skip_special);
  std::vector<std::string> pieces;
  for (int32_t id : ids) pieces.push_back(detokenizer.Append(id).value());
  pieces.push_back(detokenizer.Flush());
  return pieces;
}

TEST(IncrementalDetokenizerTest, HoldsByteFallbackRunsUntilTheCharacterIsComplete) {
  auto tok = MakeTokenizer(SentencePieceJson({"\xE2\x96\x81", "a"}, {{"\xE2\x96\x81", "a"}}));
  const int32_t sa = tok->TokenToId(
                            "\xE2\x96\x81"
                            "a")
                         .value();
  // "a你a": 你 is <0xE4><0xBD><0xA0>; nothing of it shows until the run ends.
  const std::vector<int32_t> ids = {sa, 3 + 0xE4, 3 + 0xBD, 3 + 0xA0, sa};
  EXPECT_EQ(Stream(*tok, ids), (std::vector<std::string>{"a", "", "", "", "\xE4\xBD\xA0 a", ""}));
  // A run cut short at the end becomes U+FFFD at Flush.
  EXPECT_EQ(Stream(*tok, {sa, 3 + 0xE4, 3 + 0xBD}),
            (std::vector<std::string>{"a", "", "", "\xEF\xBF\xBD"}));
  EXPECT_EQ(tok->Decode({sa, 3 + 0xE4, 3 + 0xBD}, false).value(), "a\xEF\xBF\xBD");
}

TEST(IncrementalDetokenizerTest, ByteLevelHoldsIncompleteSequences) {
  auto tok = MakeTokenizer(ByteLevelJson({}));
  // 😀 = F0 9F 98 80, one byte token at a time.
  EXPECT_EQ(Stream(*tok, {'x', 0xF0, 0x9F, 0x98, 0x80, 'y'}),
            (std::vector<std::string>{"x", "", "", "", "\xF0\x9F\x98\x80", "y", ""}));
  // A broken sequence becomes one U+FFFD as soon as it is known to be broken.
  EXPECT_EQ(Stream(*tok, {0xF0, 0x9F, 'z'}),
            (std::vector<std::string>{"", "", "\xEF\xBF\xBDz", ""}));
}

TEST(IncrementalDetokenizerTest, RejectsUnknownIdsWithoutLosingState) {
  auto tok = MakeTokenizer(ByteLevelJson({}));
  IncrementalDetokenizer detokenizer(*tok, false);
  EXPECT_EQ(detokenizer.Append(0xC3).value(), "");
  EXPECT_EQ(detokenizer.Append(999).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(detokenizer.Append(0xA9).value(), "\xC3\xA9");
}

// clean_up_tokenization_spaces (Llama 3's tokenizer_config.json sets it) is not applied: the
// tokenizers library, vLLM and transformers 5 leave " !=", " ," and " 's" alone.
TEST(IncrementalDetokenizerTest, CleanUpSpacesIsNotApplied) {
  nlohmann::json json = ByteLevelJson({{" ", "'"}, {"'", "s"}, {" ", "."}, {" ", ","}});
  auto tok = MakeTokenizer(json, {{"clean_up_tokenization_spaces", true}});
  const std::vector<int32_t> ids = {'a', ' ', '!', '=',  ' ', 'b', ' ', ',',
                                    ' ', 'y', ' ', '\'', 's', ' ', '.'};
  const std::string text = "a != b , y 's .";
  EXPECT_EQ(tok->Decode(ids, false).value(), text);
  std::string streamed;
  for (const std::string& piece : Stream(*tok, ids)) streamed += piece;
  EXPECT_EQ(streamed, text);
}

StopStringMatcher::Result Feed(StopStringMatcher& matcher, const std::vector<std::string>& chunks,
                               std::string* emitted) {
  StopStringMatcher::Result last;
  for (const std::string& chunk : chunks) {
    last = matcher.Append(chunk);
    *emitted += last.text;
    if (last.stopped) break;
  }
  return last;
}

TEST(StopStringMatcherTest, StopStringSplitOverThreeChunks) {
  StopStringMatcher matcher({"STOP"}, false);
  std::string emitted;
  EXPECT_EQ(matcher.Append("abc S").text, "abc ");  // "S" could start STOP
  EXPECT_EQ(matcher.Append("T").text, "");
  auto result = matcher.Append("OP and more");
  EXPECT_TRUE(result.stopped);
  EXPECT_EQ(result.text, "");
  EXPECT_EQ(matcher.Flush(), "");
}

TEST(StopStringMatcherTest, IncludeStopStringKeepsIt) {
  StopStringMatcher matcher({"\n\n"}, true);
  std::string emitted;
  auto result = Feed(matcher, {"line one\n", "\nline two"}, &emitted);
  EXPECT_TRUE(result.stopped);
  EXPECT_EQ(emitted, "line one\n\n");
}

TEST(StopStringMatcherTest, FalseStartsAreReleased) {
  StopStringMatcher matcher({"STOP"}, false);
  std::string emitted;
  auto result = Feed(matcher, {"ST", "OOP", "S", "TO"}, &emitted);
  EXPECT_FALSE(result.stopped);
  EXPECT_EQ(emitted, "STOOP");
  EXPECT_EQ(matcher.Flush(), "STO");
}

TEST(StopStringMatcherTest, OverlappingStopStringsEndAtTheEarliestMatch) {
  // "abcd" and "bc": "bc" completes first (at "c"), so it wins even though "abcd" started first.
  StopStringMatcher a({"abcd", "bc"}, false);
  std::string emitted;
  auto result = Feed(a, {"xa", "b", "cd"}, &emitted);
  EXPECT_TRUE(result.stopped);
  EXPECT_EQ(emitted, "xa");
  // Two matches ending together: the longer one (starting first) wins.
  StopStringMatcher b({"c", "abc"}, true);
  emitted.clear();
  result = Feed(b, {"zab", "cq"}, &emitted);
  EXPECT_TRUE(result.stopped);
  EXPECT_EQ(emitted, "zabc");
  StopStringMatcher c({"c", "abc"}, false);
  emitted.clear();
  Feed(c, {"zab", "cq"}, &emitted);
  EXPECT_EQ(emitted, "z");
  // A stop string that is a prefix of a held one: "aab" in "aaab".
  StopStringMatcher d({"aab"}, false);
  emitted.clear();
  result = Feed(d, {"a", "a", "a", "b"}, &emitted);
  EXPECT_TRUE(result.stopped);
  EXPECT_EQ(emitted, "a");
}

TEST(StopStringMatcherTest, NoStopStringsPassesEverything) {
  StopStringMatcher matcher({"", ""}, false);
  EXPECT_EQ(matcher.Append("anything").text, "anything");
  EXPECT_EQ(matcher.Flush(), "");
}

TEST(StopStringMatcherTest, MatchesOneShotSearchOnRandomChunkings) {
  std::mt19937 rng(3);
  const std::vector<std::string> stops = {"ab", "bab", "cc", "abc"};
  for (int trial = 0; trial < 2000; ++trial) {
    std::string text;
    const int n = 1 + static_cast<int>(rng() % 20);
    for (int i = 0; i < n; ++i) text += "abcx"[rng() % 4];
    // Reference: the earliest end, then the earliest start.
    size_t best_begin = std::string::npos, best_end = std::string::npos;
    for (const std::string& s : stops) {
      const size_t b = text.find(s);
      if (b == std::string::npos) continue;
      if (b + s.size() < best_end || (b + s.size() == best_end && b < best_begin)) {
        best_begin = b;
        best_end = b + s.size();
      }
    }
    StopStringMatcher matcher(stops, false);
    std::string emitted;
    bool stopped = false;
    for (size_t pos = 0; pos < text.size() && !stopped;) {
      const size_t len = 1 + rng() % 4;
      auto result = matcher.Append(text.substr(pos, len));
      emitted += result.text;
      stopped = result.stopped;
      pos += len;
    }
    if (!stopped) emitted += matcher.Flush();
    ASSERT_EQ(stopped, best_end != std::string::npos) << text;
    ASSERT_EQ(emitted, stopped ? text.substr(0, best_begin) : text) << text;
  }
}

TEST(StopStringMatcherDeathTest, AppendAfterStopIsABug) {
  StopStringMatcher matcher({"x"}, false);
  ASSERT_TRUE(matcher.Append("x").stopped);
  EXPECT_DEATH(matcher.Append("y"), "after a stop string matched");
}

}  // namespace
}  // namespace pagedllm::tokenizer
