// Splits a template into tokens exactly as Jinja2's lexer does in the environment transformers
// renders chat templates with (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False):
//
//   "text {{ expr }} text {% tag args %} text {# comment #}"
//    data  ^var   ^    data ^block    ^   data (comments vanish)
//
// - newlines are normalized to "\n" and one trailing newline of the template is dropped;
// - `{%-`, `{{-`, `{#-` strip all whitespace before the tag; `-%}`, `-}}`, `-#}` all after it;
// - lstrip_blocks: whitespace between the start of a line and a `{%` or `{#` is removed (not
//   before `{{`, and not when the tag starts with `{%+`);
// - trim_blocks: the first newline after `%}` or `#}` is removed (not after `+%}`);
// - `{% raw %}...{% endraw %}` is data;
// - string literals are decoded as Python's unicode-escape does ("\n", "\u00e9", ...).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace pagedllm::chat_template {

enum class TokenType {
  kData,
  kVariableBegin,  // {{
  kVariableEnd,    // }}
  kBlockBegin,     // {%
  kBlockEnd,       // %}
  kName,
  kString,    // value: the decoded string
  kInteger,   // value: decimal digits (already converted from 0x / 0o / 0b, underscores removed)
  kFloat,     // value: the literal, underscores removed
  kOperator,  // value: one of + - * / // % ** ~ == != < <= > >= = . , : | ( ) [ ] { } ;
  kEnd,
};

struct Token {
  TokenType type;
  std::string value;
  int line;  // 1-based line of the token's first character
};

// The token list ends with one kEnd token. Errors (INVALID_ARGUMENT) name the line:
// "line 3: unexpected char '@'", "line 9: missing end of comment tag".
absl::StatusOr<std::vector<Token>> Tokenize(std::string_view source);

}  // namespace pagedllm::chat_template
