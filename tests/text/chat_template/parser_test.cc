// The parser: everything outside the supported subset fails at parse time (so at server
// start-up) with UNIMPLEMENTED naming the line and the feature; malformed templates fail with
// INVALID_ARGUMENT naming the line.
#include "text/chat_template/parser.h"

#include <string>

#include "gtest/gtest.h"
#include "text/chat_template/chat_template.h"

namespace pagedllm::chat_template {
namespace {

absl::Status ParseStatus(std::string_view source) { return ParseTemplate(source).status(); }

void ExpectUnsupported(std::string_view source, std::string_view message) {
  const absl::Status status = ParseStatus(source);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << source << ": " << status;
  EXPECT_EQ(std::string(status.message()), message) << source;
}

void ExpectSyntaxError(std::string_view source, std::string_view message) {
  const absl::Status status = ParseStatus(source);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << source << ": " << status;
  EXPECT_EQ(std::string(status.message()), message) << source;
}

TEST(ParserTest, AcceptsTheSupportedSubset) {
  for (std::string_view source : {
           "{% for k, v in d.items() if k != 'x' %}{{ loop.index }}{% else %}-{% endfor %}",
           "{% if a %}1{% elif b is not none and c is defined %}2{% else %}3{% endif %}",
           "{% set ns = namespace(a=1) %}{% set ns.a = ns.a + 1 %}{% set x, y = 1, 2 %}",
           "{% set block | trim %} x {% endset %}",
           "{% macro m(a, b='d') %}{{ a ~ b }}{% endmacro %}{{ m(1, b=2) }}",
           "{% for x in y %}{% if x %}{% break %}{% else %}{% continue %}{% endif %}{% endfor %}",
           "{{ x | selectattr('role', 'equalto', 'user') | map(attribute='content') | list }}",
           "{{ x is divisibleby 3 }}{{ 'a' if b else 'c' }}{{ [1, 2][::-1] }}{{ {'k': (1,)} }}",
           "{{ raise_exception('no') }}{{ strftime_now('%Y') }}{{ range(3) | join }}",
           "{% generation %}{{ x }}{% endgeneration %}{% print 'p' %}{% raw %}{{{% endraw %}",
           "{% macro m(a) %}{{ caller(a) }}{% endmacro %}{% call(x) m(1) %}{{ x }}{% endcall %}",
           "{% macro f() %}{% endmacro %}{% filter upper | trim %} x {% endfilter %}"
           "{{ f(*args, k=1, **kw) }}",
           "{{ s.strip().split(',')[0].upper() }}{{ d.get('k', 1) }}{{ l.append(1) }}",
       }) {
    EXPECT_TRUE(ParseTemplate(source).ok()) << source << ": " << ParseStatus(source);
  }
}

TEST(ParserTest, UnsupportedFeaturesNameTheFeatureAndLine) {
  ExpectUnsupported("{% include 'other.jinja' %}", "line 1: unsupported tag 'include'");
  ExpectUnsupported("a\n{% extends 'base' %}", "line 2: unsupported tag 'extends'");
  ExpectUnsupported("{% with a = 1 %}{% endwith %}", "line 1: unsupported tag 'with'");
  ExpectUnsupported("{% do x.append(1) %}", "line 1: unsupported tag 'do'");
  ExpectUnsupported("{% frobnicate %}", "line 1: unsupported tag 'frobnicate' (not a Jinja2 tag)");
  ExpectUnsupported("\n\n{{ text | wordwrap(40) }}", "line 3: unsupported filter 'wordwrap'");
  ExpectUnsupported("{{ x | e }}", "line 1: unsupported filter 'e'");
  ExpectUnsupported("{{ x is escaped }}", "line 1: unsupported test 'escaped'");
  ExpectUnsupported("{{ x.format_map(y) }}", "line 1: unsupported method 'format_map'");
  ExpectUnsupported("{{ 'x {}'.format(1) }}", "line 1: unsupported method 'format'");
  ExpectUnsupported("{{ lipsum(2) }}", "line 1: unsupported function 'lipsum'");
  ExpectUnsupported("{{ undefined_macro() }}", "line 1: unsupported function 'undefined_macro'");
  ExpectUnsupported("{% for x in y recursive %}{{ loop(x) }}{% endfor %}",
                    "line 1: unsupported recursive loops");
  ExpectUnsupported("{{ x | select('nosuchtest') }}", "line 1: unsupported test 'nosuchtest'");
  ExpectUnsupported("{{ x | map('nosuchfilter') }}", "line 1: unsupported filter 'nosuchfilter'");
  ExpectUnsupported("{{ caller() }}", "line 1: unsupported function 'caller'");
}

TEST(ParserTest, MalformedTemplatesNameTheLine) {
  ExpectSyntaxError("{% if %}", "line 1: expected an expression, got 'end of statement block'");
  ExpectSyntaxError("\n{{ 1 + }}", "line 2: unexpected 'end of print statement'");
  ExpectSyntaxError("{% if x %}never closed",
                    "line 1: unexpected end of template, expected 'elif' or 'else' or 'endif'");
  ExpectSyntaxError("{% endfor %}", "line 1: unexpected 'endfor' tag");
  ExpectSyntaxError("{% break %}", "line 1: 'break' outside of a loop");
  ExpectSyntaxError("{% set true = 1 %}", "line 1: can't assign to 'true'");
  ExpectSyntaxError("{% macro m(a=1, b) %}{% endmacro %}",
                    "line 1: non-default argument follows default argument");
  ExpectSyntaxError("{{ x is defined is none }}", "line 1: cannot chain multiple tests with 'is'");
  ExpectSyntaxError("{{ range(**d, 1) }}", "line 1: invalid syntax for function call expression");
}

TEST(ParserTest, ChatTemplateParseNamesTheOrigin) {
  absl::StatusOr<ChatTemplate> parsed =
      ChatTemplate::Parse("ok\n{{ x | wordcount }}", "/models/m/tokenizer_config.json");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(parsed.status().message(),
            "/models/m/tokenizer_config.json: chat template line 2: unsupported filter "
            "'wordcount'");
}

}  // namespace
}  // namespace pagedllm::chat_template
