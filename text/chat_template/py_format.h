// Values as Python writes them: str() (what `{{ x }}` prints), repr() (what str() of a container
// shows for its items), float repr (shortest round-trip digits), json.dumps (transformers' tojson
// filter), and printf-style `%` formatting. Byte for byte what CPython 3 produces.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "text/chat_template/value.h"

namespace pagedllm::chat_template {

// int(f) when it fits 64 bits (Python's ints are unbounded); nullopt for inf, nan, too large.
std::optional<int64_t> TruncateToInt64(double f);

// repr(float): "1.0", "0.1", "1e+16", "1.5e-05", "inf", "nan".
std::string FloatRepr(double f);
// str(v): strings as they are, None -> "None", True -> "True", containers as Python repr.
// Undefined prints as "". Fails for what Python would print as <object at 0x...>.
absl::StatusOr<std::string> PyStr(const Value& v);
absl::StatusOr<std::string> PyRepr(const Value& v);

// json.dumps(v, ensure_ascii, indent, separators, sort_keys) with Python's defaults: separators
// (", ", ": ") without indent and (",", ": ") with it; indent is a number of spaces or a string.
struct JsonDumpsOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;
  std::optional<std::string> item_separator;
  std::optional<std::string> key_separator;
  bool sort_keys = false;
};
absl::StatusOr<std::string> JsonDumps(const Value& v, const JsonDumpsOptions& options);

// Python's `format % args` for str: %s %r %d %i %f %F %x %X %o %c %% with flags, width,
// precision and %(name)s mapping keys. `args` is a tuple, a mapping or a single value.
absl::StatusOr<std::string> PercentFormat(const std::string& format, const Value& args);

}  // namespace pagedllm::chat_template
