// UTF-8 helpers (validation offsets, the streaming lossy decoder) and the Oniguruma -> PCRE2
// pattern translation.
#include <random>
#include <string>
#include <vector>

#include "text/tokenizer/regex.h"
#include "text/tokenizer/utf8.h"
#include "gtest/gtest.h"

namespace pagedllm::tokenizer {
namespace {

TEST(Utf8Test, FindInvalidUtf8NamesTheFirstBadByte) {
  EXPECT_EQ(FindInvalidUtf8(""), std::string::npos);
  EXPECT_EQ(FindInvalidUtf8("plain ascii, long enough for the 8-byte path"), std::string::npos);
  EXPECT_EQ(FindInvalidUtf8("h\xC3\xA9llo \xF0\x9F\x98\x80"), std::string::npos);
  EXPECT_EQ(FindInvalidUtf8("abc\xFF"), 3u);           // never valid
  EXPECT_EQ(FindInvalidUtf8("abcdefghij\x80"), 10u);   // stray continuation
  EXPECT_EQ(FindInvalidUtf8("ab\xC0\xAF"), 2u);        // overlong '/'
  EXPECT_EQ(FindInvalidUtf8("a\xE0\x80\xAF"), 1u);     // overlong 3-byte
  EXPECT_EQ(FindInvalidUtf8("xy\xED\xA0\x80"), 2u);    // surrogate U+D800
  EXPECT_EQ(FindInvalidUtf8("\xF4\x90\x80\x80"), 0u);  // > U+10FFFF
  EXPECT_EQ(FindInvalidUtf8("ok\xE4\xB8"), 2u);        // truncated at the end
  EXPECT_EQ(FindInvalidUtf8("ok\xE4\xB8z"), 2u);       // truncated in the middle
}

std::string LossyAll(std::string_view bytes) {
  LossyUtf8Decoder decoder;
  std::string out;
  decoder.Append(bytes, &out);
  decoder.Finish(&out);
  return out;
}

TEST(Utf8Test, LossyDecoderReplacesMaximalSubparts) {
  EXPECT_EQ(LossyAll("a\xE4\xB8"
                     "b"),
            "a\xEF\xBF\xBD"
            "b");                                       // one U+FFFD for E4 B8
  EXPECT_EQ(LossyAll("\xF0\x9F\x98"), "\xEF\xBF\xBD");  // incomplete at the end
  EXPECT_EQ(LossyAll("\xED\xA0\x80"),                   // surrogate: 3 subparts
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(LossyAll("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(LossyAll("\xE4\xBD\xA0\xE5\xA5\xBD"), "\xE4\xBD\xA0\xE5\xA5\xBD");  // 你好 intact
}

TEST(Utf8Test, LossyDecoderStreamsExactlyLikeOneShot) {
  std::mt19937 rng(7);
  const std::string alphabet[] = {"a",    "\xC3", "\xA9", "\xE4", "\xBD", "\xA0", "\xF0",
                                  "\x9F", "\x98", "\x80", "\xED", "\xFF", "\xC0"};
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bytes;
    const int n = 1 + static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) bytes += alphabet[rng() % std::size(alphabet)];
    LossyUtf8Decoder decoder;
    std::string streamed;
    for (char c : bytes) {
      std::string piece;
      decoder.Append(std::string_view(&c, 1), &piece);
      EXPECT_EQ(FindInvalidUtf8(piece), std::string::npos);
      streamed += piece;
    }
    decoder.Finish(&streamed);
    EXPECT_EQ(streamed, LossyAll(bytes));
    EXPECT_EQ(FindInvalidUtf8(streamed), std::string::npos);
  }
}

std::vector<std::string> Matches(const std::string& onig, const std::string& text) {
  auto pattern = OnigurumaToPcre2(onig, "test");
  EXPECT_TRUE(pattern.ok()) << pattern.status();
  auto regex = Regex::Compile(*pattern, "test");
  EXPECT_TRUE(regex.ok()) << regex.status();
  std::vector<Regex::Match> matches;
  EXPECT_TRUE((*regex)->FindAll(text, &matches).ok());
  std::vector<std::string> out;
  for (const auto& m : matches) out.push_back(text.substr(m.begin, m.end - m.begin));
  return out;
}

TEST(RegexTest, CaseInsensitiveGroupsFoldAsciiOnly) {
  EXPECT_EQ(Matches("(?i:'s|'ll)", "he'S we'LL it's x'\xC5\xBF"),  // 'ſ is not 's
            (std::vector<std::string>{"'S", "'LL", "'s"}));
}

TEST(RegexTest, WhitespaceIsUnicodeWhiteSpace) {
  // \s covers U+0085 and U+3000 and not U+200B; \S is its complement.
  EXPECT_EQ(Matches("\\s+",
                    "a\xC2\x85"
                    "b\xE3\x80\x80"
                    "c\xE2\x80\x8B"
                    "d"),
            (std::vector<std::string>{"\xC2\x85", "\xE3\x80\x80"}));
  EXPECT_EQ(Matches("[^\\s\\p{L}]+", "ab 12 !?"), (std::vector<std::string>{"12", "!?"}));
  EXPECT_EQ(Matches("\\s+(?!\\S)", "a   b"), (std::vector<std::string>{"  "}));
}

TEST(RegexTest, Llama3PatternSplitsLikeTheReference) {
  const std::string llama3 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  EXPECT_EQ(Matches(llama3, "Hello world's 12345 \n\n  x!!"),
            (std::vector<std::string>{"Hello", " world", "'s", " ", "123", "45", " \n\n", " ", " x",
                                      "!!"}));
}

TEST(RegexTest, UnsupportedConstructsAreNamed) {
  for (const char* pattern : {"\\w+", "a\\b", "(a)\\1", "[[:alpha:]]", "(?x)a", "[a[b]]"}) {
    auto translated = OnigurumaToPcre2(pattern, "tokenizer.json: pre_tokenizer.pattern.Regex");
    ASSERT_FALSE(translated.ok()) << pattern;
    EXPECT_EQ(translated.status().code(), absl::StatusCode::kUnimplemented);
    EXPECT_NE(translated.status().message().find("pre_tokenizer.pattern.Regex"), std::string::npos);
  }
}

TEST(RegexTest, LiteralPatternsQuoteEverything) {
  auto regex = Regex::CompileLiteral("a.\\E+", "test");
  ASSERT_TRUE(regex.ok()) << regex.status();
  std::vector<Regex::Match> matches;
  ASSERT_TRUE((*regex)->FindAll("xa.\\E+ya.b", &matches).ok());
  ASSERT_EQ(matches.size(), 1u);
  EXPECT_EQ(matches[0].begin, 1u);
  EXPECT_EQ(matches[0].end, 6u);
}

}  // namespace
}  // namespace pagedllm::tokenizer
