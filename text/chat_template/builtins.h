// Jinja2's built-in filters and tests, the Python methods templates call on strings, dicts and
// lists, and the globals (range, namespace, dict, raise_exception, strftime_now) -- the ones chat
// templates use, with Jinja2's and Python's semantics. The parser asks which names exist so that
// a template using anything else fails at start-up.
#pragma once

#include <string_view>

#include "absl/status/statusor.h"
#include "text/chat_template/value.h"

namespace pagedllm::chat_template {

bool IsSupportedFilter(std::string_view name);
bool IsSupportedTest(std::string_view name);
bool IsSupportedMethod(std::string_view name);  // called as x.name(...)
bool IsSupportedGlobal(std::string_view name);  // called as name(...)

absl::StatusOr<Value> ApplyFilter(Evaluator& evaluator, std::string_view name, const Value& subject,
                                  CallArgs& args);
absl::StatusOr<bool> ApplyTest(Evaluator& evaluator, std::string_view name, const Value& subject,
                               CallArgs& args);

// `object.name` as the sandboxed environment resolves it: a Python attribute (bound method) of
// str / dict / list, else the dict key; Undefined when neither exists; an error for Undefined.
absl::StatusOr<Value> GetAttribute(const Value& object, const std::string& name);
// Only Python attributes (the `attr` filter): no dict key fallback.
absl::StatusOr<Value> GetPythonAttribute(const Value& object, const std::string& name);
// `object[key]`: item first, then attribute for string keys; Undefined when neither exists.
absl::StatusOr<Value> GetItem(const Value& object, const Value& key);

// The global function `name` (see IsSupportedGlobal).
Value GlobalFunction(std::string_view name);

}  // namespace pagedllm::chat_template
