// The lexer: delimiters, whitespace control (- and +), trim_blocks and lstrip_blocks exactly as
// Jinja2 applies them, comments, raw blocks, literals, and errors naming the line.
#include "text/chat_template/lexer.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace pagedllm::chat_template {
namespace {

// Tokens as compact text: data in quotes, {{ }} {% %} as written, other tokens by value.
std::string Show(std::string_view source) {
  absl::StatusOr<std::vector<Token>> tokens = Tokenize(source);
  if (!tokens.ok()) return "error: " + std::string(tokens.status().message());
  std::string out;
  for (const Token& token : *tokens) {
    if (!out.empty() && token.type != TokenType::kEnd) out += " ";
    switch (token.type) {
      case TokenType::kData:
        out += "\"" + token.value + "\"";
        break;
      case TokenType::kVariableBegin:
        out += "{{";
        break;
      case TokenType::kVariableEnd:
        out += "}}";
        break;
      case TokenType::kBlockBegin:
        out += "{%";
        break;
      case TokenType::kBlockEnd:
        out += "%}";
        break;
      case TokenType::kString:
        out += "str:" + token.value;
        break;
      case TokenType::kInteger:
        out += "int:" + token.value;
        break;
      case TokenType::kFloat:
        out += "float:" + token.value;
        break;
      case TokenType::kEnd:
        break;
      default:
        out += token.value;
    }
  }
  return out;
}

TEST(LexerTest, SplitsDataVariablesAndBlocks) {
  EXPECT_EQ(Show("a {{ x }} b"), "\"a \" {{ x }} \" b\"");
  EXPECT_EQ(Show("{% if x %}y{% endif %}"), "{% if x %} \"y\" {% endif %}");
  EXPECT_EQ(Show("{{ a.b[0] | f(1, k='v') }}"), "{{ a . b [ int:0 ] | f ( int:1 , k = str:v ) }}");
  EXPECT_EQ(Show("{{ a//b ** c != d <= e ~ f }}"), "{{ a // b ** c != d <= e ~ f }}");
}

TEST(LexerTest, MinusStripsAllWhitespaceOnThatSide) {
  EXPECT_EQ(Show("a  \n {{- x -}} \n b"), "\"a\" {{ x }} \"b\"");
  EXPECT_EQ(Show("a \n {%- if x -%}\n\n b"), "\"a\" {% if x %} \"b\"");
  // Unicode whitespace counts (Python's str.rstrip()).
  EXPECT_EQ(Show("a\u3000{{- x }}"), "\"a\" {{ x }}");
}

TEST(LexerTest, TrimBlocksRemovesOneNewlineAfterABlockOrComment) {
  EXPECT_EQ(Show("{% if x %}\n\nb"), "{% if x %} \"\nb\"");
  EXPECT_EQ(Show("{# c #}\nb"), "\"b\"");
  // Not after a variable, and not after `+%}`.
  EXPECT_EQ(Show("{{ x }}\nb"), "{{ x }} \"\nb\"");
  EXPECT_EQ(Show("{% if x +%}\nb"), "{% if x %} \"\nb\"");
}

TEST(LexerTest, LstripBlocksRemovesIndentationBeforeBlocksOnly) {
  EXPECT_EQ(Show("a\n  {% if x %}\n  b\n  {% endif %}\nc"),
            "\"a\n\" {% if x %} \"  b\n\" {% endif %} \"c\"");
  // At the start of the template too.
  EXPECT_EQ(Show("  {% if x %}y"), "{% if x %} \"y\"");
  // Not before {{ }}, not when text precedes the tag on its line, not with {%+.
  EXPECT_EQ(Show("a\n  {{ x }}"), "\"a\n  \" {{ x }}");
  EXPECT_EQ(Show("a\n b {% if x %}"), "\"a\n b \" {% if x %}");
  EXPECT_EQ(Show("a\n  {%+ if x %}"), "\"a\n  \" {% if x %}");
  // A comment alone on its line vanishes with its line.
  EXPECT_EQ(Show("a\n  {# note #}\nb"), "\"a\n\" \"b\"");
  // After a variable, the next line's indentation before a block is stripped; on the same line
  // it is not (the line did not start there).
  EXPECT_EQ(Show("{{ x }}  {% if y %}"), "{{ x }} \"  \" {% if y %}");
}

TEST(LexerTest, NewlinesAreNormalizedAndOneTrailingNewlineDropped) {
  EXPECT_EQ(Show("a\r\nb\rc\n"), "\"a\nb\nc\"");
  EXPECT_EQ(Show("a\n\n"), "\"a\n\"");
}

TEST(LexerTest, RawBlocksAreData) {
  EXPECT_EQ(Show("{% raw %}{{ x }}{% endraw %}"), "\"{{ x }}\"");
  EXPECT_EQ(Show("{% raw -%}  {{ x }}  {%- endraw %}"), "\"{{ x }}\"");
}

TEST(LexerTest, BracesInsideExpressionsDoNotEndTheTag) {
  EXPECT_EQ(Show("{{ {'a': {'b': 1}} }}"), "{{ { str:a : { str:b : int:1 } } }}");
  EXPECT_EQ(Show("{{ {'a': 1}}}"), "{{ { str:a : int:1 } }}");
}

TEST(LexerTest, Literals) {
  EXPECT_EQ(Show("{{ 'it\\'s' \"a\\nb\" '\\u00e9\\x41\\101\\\\' }}"),
            "{{ str:it's str:a\nb str:\u00e9AA\\ }}");
  EXPECT_EQ(Show("{{ 1_000 0x1F 0o17 0b101 1.5 1e3 2.5E-2 1. }}"),
            "{{ int:1000 int:31 int:15 int:5 float:1.5 float:1e3 float:2.5E-2 int:1 . }}");
  // An unknown escape keeps its backslash, as Python's unicode-escape does.
  EXPECT_EQ(Show("{{ '\\d' }}"), "{{ str:\\d }}");
}

TEST(LexerTest, ErrorsNameTheLine) {
  EXPECT_EQ(Show("a\nb {# never closed"), "error: line 2: missing end of comment tag");
  EXPECT_EQ(Show("\n\n{{ a @ b }}"), "error: line 3: unexpected char '@'");
  EXPECT_EQ(Show("{{ 'open }}"), "error: line 1: unterminated string literal");
  EXPECT_EQ(Show("{{ x )}}"), "error: line 1: unexpected ')'");
  EXPECT_EQ(Show("{% if x"), "error: line 1: unexpected end of template, expected '%}'");
}

}  // namespace
}  // namespace pagedllm::chat_template
