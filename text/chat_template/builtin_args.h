// What the built-in filters and tests share: Python-style binding of their arguments and
// Jinja's soft_str. Internal to the chat template library.
#pragma once

#include <algorithm>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "text/chat_template/py_format.h"
#include "text/chat_template/py_string.h"
#include "text/chat_template/value.h"

namespace pagedllm::chat_template {

// Python's TypeError and friends: a bad argument or operand.
inline absl::Status TypeError(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

// A filter's or test's parameters bound as Python binds them: positional in order, then by name.
class Params {
 public:
  static absl::StatusOr<Params> Bind(std::string_view function, const CallArgs& args,
                                     std::initializer_list<std::string_view> names) {
    Params params;
    params.values_.resize(names.size());
    const std::vector<std::string_view> list(names);
    if (args.positional.size() > list.size()) {
      return TypeError(absl::StrCat(Sv(function), "() takes at most ", list.size(),
                                    " argument(s) besides its subject (", args.positional.size(),
                                    " given)"));
    }
    for (size_t i = 0; i < args.positional.size(); ++i) params.values_[i] = args.positional[i];
    for (const auto& [name, value] : args.keyword) {
      const auto it = std::find(list.begin(), list.end(), name);
      if (it == list.end()) {
        return TypeError(
            absl::StrCat(Sv(function), "() got an unexpected keyword argument '", name, "'"));
      }
      auto& slot = params.values_[it - list.begin()];
      if (slot.has_value()) {
        return TypeError(
            absl::StrCat(Sv(function), "() got multiple values for argument '", name, "'"));
      }
      slot = value;
    }
    return params;
  }

  // The argument, or `fallback` when not given.
  Value Get(size_t i, Value fallback = Value::None()) const {
    return values_[i].has_value() ? *values_[i] : fallback;
  }
  bool Has(size_t i) const { return values_[i].has_value(); }

 private:
  std::vector<std::optional<Value>> values_;
};

// Jinja's soft_str: strings as they are, anything else through str().
inline absl::StatusOr<std::string> SoftStr(const Value& v) {
  if (v.is_string()) return v.string_value();
  return PyStr(v);
}

}  // namespace pagedllm::chat_template
