// Jinja2's grammar (precedence, tests, filters, tuples, slices, calls, statements) over the
// lexer's tokens, for the subset chat templates use. Anything outside it fails here, at parse
// time, naming the line and the feature: "line 7: unsupported filter 'wordwrap'".
//
//   expression := condexpr: or ['if' or ['else' condexpr]]
//   or := and ('or' and)*    and := not ('and' not)*    not := 'not' not | compare
//   compare := math1 (('=='|'!='|'<'|'<='|'>'|'>='|'in'|'not in') math1)*
//   math1 := concat (('+'|'-') concat)*      concat := math2 ('~' math2)*
//   math2 := pow (('*'|'/'|'//'|'%') pow)*   pow := unary ('**' unary)*  (left-associative)
//   unary := ('-'|'+') unary | primary postfix* ('|' filter | 'is' test | call)*
//
// Statements: if / elif / else, for (tuple targets, `if` filter, else), set (also namespace
// attributes and `{% set x %}...{% endset %}`), macro, call blocks, filter blocks, break /
// continue, print, and transformers' generation block.
#pragma once

#include <string_view>

#include "absl/status/statusor.h"
#include "text/chat_template/ast.h"

namespace pagedllm::chat_template {

// INVALID_ARGUMENT for malformed templates, UNIMPLEMENTED for valid Jinja2 this engine does not
// support; both say "line N: ...".
absl::StatusOr<Body> ParseTemplate(std::string_view source);

}  // namespace pagedllm::chat_template
