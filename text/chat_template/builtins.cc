// Attribute and item lookup as Jinja2's ImmutableSandboxedEnvironment does it, the Python methods
// of str / dict / list that templates call, the loop object, and the global functions.
#include "text/chat_template/builtins.h"

#include <algorithm>
#include <ctime>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "text/chat_template/builtin_args.h"
#include "text/chat_template/evaluator.h"
#include "text/chat_template/py_format.h"
#include "text/chat_template/py_string.h"

namespace pagedllm::chat_template {
namespace {

// Every attribute name Python's str, dict and list have (so `x.name` is a bound method, not a
// dict key); the methods this engine implements are below, the others fail when called.
constexpr std::string_view kStrAttributes[] = {
    "capitalize",   "casefold",    "center",    "count",      "encode",       "endswith",
    "expandtabs",   "find",        "format",    "format_map", "index",        "isalnum",
    "isalpha",      "isascii",     "isdecimal", "isdigit",    "isidentifier", "islower",
    "isnumeric",    "isprintable", "isspace",   "istitle",    "isupper",      "join",
    "ljust",        "lower",       "lstrip",    "maketrans",  "partition",    "removeprefix",
    "removesuffix", "replace",     "rfind",     "rindex",     "rjust",        "rpartition",
    "rsplit",       "rstrip",      "split",     "splitlines", "startswith",   "strip",
    "swapcase",     "title",       "translate", "upper",      "zfill"};
constexpr std::string_view kDictAttributes[] = {"clear",      "copy",   "fromkeys", "get",
                                                "items",      "keys",   "pop",      "popitem",
                                                "setdefault", "update", "values"};
constexpr std::string_view kListAttributes[] = {"append", "clear",   "copy",   "count",
                                                "extend", "index",   "insert", "pop",
                                                "remove", "reverse", "sort"};
// What the sandbox refuses (jinja2.sandbox._mutable_spec).
constexpr std::string_view kDictMutators[] = {"clear", "pop", "popitem", "setdefault", "update"};
constexpr std::string_view kListMutators[] = {"append", "clear",  "extend",  "insert",
                                              "pop",    "remove", "reverse", "sort"};

// The methods implemented (for the parser: any object may have them).
constexpr std::string_view kMethods[] = {
    // str
    "capitalize", "count", "endswith", "find", "index", "isalnum", "isalpha", "isdigit", "islower",
    "isspace", "isupper", "join", "lower", "lstrip", "removeprefix", "removesuffix", "replace",
    "rfind", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "title", "upper",
    // dict
    "copy", "get", "items", "keys", "values",
    // loop
    "cycle", "changed",
    // refused by the sandbox at run time, as in transformers
    "append", "clear", "extend", "insert", "pop", "popitem", "remove", "reverse", "setdefault",
    "sort", "update"};

constexpr std::string_view kGlobals[] = {"range", "dict", "namespace", "raise_exception",
                                         "strftime_now"};

template <size_t N>
bool In(const std::string_view (&names)[N], std::string_view name) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

absl::Status NoKeywords(std::string_view method, const CallArgs& args) {
  if (!args.keyword.empty()) {
    return TypeError(absl::StrCat(Sv(method), "() takes no keyword arguments"));
  }
  return absl::OkStatus();
}

absl::Status ArgCount(std::string_view method, const CallArgs& args, size_t min, size_t max) {
  PAGEDLLM_RETURN_IF_ERROR(NoKeywords(method, args));
  const size_t n = args.positional.size();
  if (n < min || n > max) {
    return TypeError(absl::StrCat(Sv(method), "() takes ", min == max ? "exactly " : "from ", min,
                                  min == max ? "" : absl::StrCat(" to ", max), " argument(s) (", n,
                                  " given)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<const std::string*> StringArg(std::string_view method, const Value& v) {
  if (!v.is_string()) {
    return TypeError(absl::StrCat(Sv(method), "() argument must be str, not ", TypeName(v)));
  }
  return &v.string_value();
}

// Optional `chars` / `sep` argument: nullptr for None or absent.
absl::StatusOr<const std::string*> OptionalStringArg(std::string_view method, const CallArgs& args,
                                                     size_t index) {
  if (index >= args.positional.size() || args.positional[index].is_none()) return nullptr;
  return StringArg(method, args.positional[index]);
}

absl::StatusOr<Value> StrMethod(const std::string& s, const std::string& name, CallArgs& args) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    PAGEDLLM_RETURN_IF_ERROR(ArgCount(name, args, 0, 1));
    PAGEDLLM_ASSIGN_OR_RETURN(const std::string* chars, OptionalStringArg(name, args, 0));
    return Value::String(PyStrip(s, chars, name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    PAGEDLLM_RETURN_IF_ERROR(NoKeywords(name, args));
    if (args.positional.size() > 2)
      return TypeError(absl::StrCat(name, "() takes at most 2 arguments"));
    PAGEDLLM_ASSIGN_OR_RETURN(const std::string* sep, OptionalStringArg(name, args, 0));
    if (sep != nullptr && sep->empty()) return absl::InvalidArgumentError("empty separator");
    int64_t maxsplit = -1;
    if (args.positional.size() == 2) {
      if (!args.positional[1].is_integral()) return TypeError("maxsplit must be an integer");
      maxsplit = args.positional[1].int_value();
    }
    std::vector<Value> parts;
    for (std::string& part : PySplit(s, sep, maxsplit, name == "rsplit")) {
      parts.push_back(Value::String(std::move(part)));
    }
    return Value::List(std::move(parts));
  }
  if (name == "splitlines") {
    PAGEDLLM_RETURN_IF_ERROR(ArgCount(name, args, 0, 1));
    const bool keepends = !args.positional.empty() && Truthy(args.positional[0]);
    std::vector<Value> lines;
    for (std::string& line : PySplitLines(s, keepends))
      lines.push_back(Value::String(std::move(line)));
    return Value::List(std::move(lines));
  }
  if (name == "startswith" || name == "endswith") {
    PAGEDLLM_RETURN_IF_ERROR(ArgCount(name, args, 1, 1));
    const Value& arg = args.positional[0];
    std::vector<Value> candidates;
    if (arg.is_list() && arg.list().flavor == ListFlavor::kTuple) {
      candidates = arg.list().items;
    } else if (arg.is_string()) {
      candidates.push_back(arg);
    } else {
      return TypeError(
          absl::StrCat(name, " first arg must be str or a tuple of str, not ", TypeName(arg)));
    }
    for (const Value& candidate : candidates) {
      PAGEDLLM_ASSIGN_OR_RETURN(const std::string* affix, StringArg(name, candidate));
      const bool match =
          affix->size() <= s.size() &&
          (name == "startswith" ? s.compare(0, affix->size(), *affix) == 0
                                : s.compare(s.size() - affix->size(), affix->size(), *affix) == 0);
      if (match) return Value::Bool(true);
    }
    return Value::Bool(false);
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    PAGEDLLM_RETURN_IF_ERROR(ArgCount(name, args, 0, 0));
    if (name == "upper") return Value::String(PyUpper(s));
    if (name == "lower") return Value::String(PyLower(s));
    if (name == "title") return Value::String(PyTitle(s));
    return Value::String(PyCapitalize(s));
  }
  if (name == "replace") {
    PAGEDLLM_RETURN_IF_ERROR(ArgCount(name, args, 2, 3));
    PAGEDLLM_ASSIGN_OR_RETURN(const std::string* old_text, StringArg(name, args.positional[0]));
    PAGEDLLM_ASSIGN_OR_RETURN(const std::string* new_text, StringArg(name, args.positional[1]));
    int64_t count = -1;
    if (args.positional.size() == 3) {
      if (!args.positional[2].is_integral()) return TypeError("replace() count must be an integer");
      count = args.positional[2].int_value();
    }
    return Value::String(PyReplace(s, *old_text, *new_text, count));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "count") {
    PAGEDLLM_RETURN_IF_ERROR(ArgCount(name, args, 1, 1));
    PAGEDLLM_ASSIGN_OR_RETURN(const std::string* needle, StringArg(name, args.positional[0]));
    if (name == "count") return Value::Int(PyCount(s, *needle));
    const size_t found = name == "rfind" ? s.rfind(*needle) : s.find(*needle);
    if (found == std::string::npos) {
      if (name == "index") return absl::InvalidArgumentError("substring not found");
      return Value::Int(-1);
    }
    return Value::Int(static_cast<int64_t>(CodePointCount(std::string_view(s).substr(0, found))));
  }
  if (name == "join") {
    PAGEDLLM_RETURN_IF_ERROR(ArgCount(name, args, 1, 1));
    PAGEDLLM_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(args.positional[0]));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string()) {
        return TypeError(absl::StrCat("sequence item ", i, ": expected str instance, ",
                                      TypeName(items[i]), " found"));
      }
      if (i > 0) out += s;
      out += items[i].string_value();
    }
    return Value::String(std::move(out));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    PAGEDLLM_RETURN_IF_ERROR(ArgCount(name, args, 1, 1));
    PAGEDLLM_ASSIGN_OR_RETURN(const std::string* affix, StringArg(name, args.positional[0]));
    if (name == "removeprefix" && s.compare(0, affix->size(), *affix) == 0) {
      return Value::String(s.substr(affix->size()));
    }
    if (name == "removesuffix" && !affix->empty() && affix->size() <= s.size() &&
        s.compare(s.size() - affix->size(), affix->size(), *affix) == 0) {
      return Value::String(s.substr(0, s.size() - affix->size()));
    }
    return Value::String(s);
  }
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" ||
      name == "islower" || name == "isupper") {
    PAGEDLLM_RETURN_IF_ERROR(ArgCount(name, args, 0, 0));
    const std::u32string cps = DecodeUtf8(s);
    if (name == "islower") return Value::Bool(s == PyLower(s) && s != PyUpper(s));
    if (name == "isupper") return Value::Bool(s == PyUpper(s) && s != PyLower(s));
    if (cps.empty()) return Value::Bool(false);
    const auto all = [&](auto predicate) { return std::all_of(cps.begin(), cps.end(), predicate); };
    // ASCII classes; Python's also count other scripts' letters and digits.
    const auto digit = [](char32_t c) { return c >= '0' && c <= '9'; };
    const auto alpha = [](char32_t c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
    };
    if (name == "isdigit") return Value::Bool(all(digit));
    if (name == "isalpha") return Value::Bool(all(alpha));
    if (name == "isalnum")
      return Value::Bool(all([&](char32_t c) { return digit(c) || alpha(c); }));
    return Value::Bool(all(IsPySpace));
  }
  return absl::UnimplementedError(absl::StrCat("unsupported method str.", name, "()"));
}

absl::StatusOr<Value> DictMethod(const Value& dict, const std::string& name, CallArgs& args) {
  if (name == "get") {
    PAGEDLLM_RETURN_IF_ERROR(ArgCount(name, args, 1, 2));
    const Value& key = args.positional[0];
    if (key.is_list() || key.is_dict()) {
      return TypeError(absl::StrCat("unhashable type: '", TypeName(key), "'"));
    }
    if (const Value* found = dict.dict().Find(key)) return *found;
    return args.positional.size() == 2 ? args.positional[1] : Value::None();
  }
  PAGEDLLM_RETURN_IF_ERROR(ArgCount(name, args, 0, 0));
  if (name == "copy") return dict;
  std::vector<Value> out;
  for (const auto& [key, value] : dict.dict().entries) {
    if (name == "items") {
      out.push_back(Value::List({key, value}, ListFlavor::kTuple));
    } else {
      out.push_back(name == "keys" ? key : value);
    }
  }
  if (name == "items" || name == "keys" || name == "values") return Value::List(std::move(out));
  return absl::UnimplementedError(absl::StrCat("unsupported method dict.", name, "()"));
}

absl::StatusOr<Value> ListMethod(const Value& list, const std::string& name, CallArgs& args) {
  PAGEDLLM_RETURN_IF_ERROR(ArgCount(name, args, name == "copy" ? 0 : 1, name == "copy" ? 0 : 1));
  if (name == "copy") return Value::List(list.list().items);
  const auto& items = list.list().items;
  int64_t count = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    if (!Equals(items[i], args.positional[0])) continue;
    if (name == "index") return Value::Int(static_cast<int64_t>(i));
    ++count;
  }
  if (name == "count") return Value::Int(count);
  if (name == "index") return absl::InvalidArgumentError("list.index(x): x not in list");
  return absl::UnimplementedError(absl::StrCat("unsupported method list.", name, "()"));
}

// A bound method of `object`.
Value Method(const Value& object, const std::string& name) {
  return Value::Callable(name, [object, name](Evaluator&, CallArgs& args) -> absl::StatusOr<Value> {
    if (object.is_string()) return StrMethod(object.string_value(), name, args);
    if (object.is_dict()) return DictMethod(object, name, args);
    return ListMethod(object, name, args);
  });
}

Value Unsafe(const Value& object, const std::string& name) {
  return Value::Undefined(absl::StrCat("access to attribute '", name, "' of '", TypeName(object),
                                       "' object is unsafe."),
                          /*is_unsafe=*/true);
}

Value NoAttribute(const Value& object, const std::string& name) {
  return Value::Undefined(
      absl::StrCat("'", ObjectTypeRepr(object), "' has no attribute '", name, "'"));
}

// Python attributes (not items) of `object`; nullopt when it has none of that name.
std::optional<Value> PythonAttribute(const Value& object, const std::string& name) {
  switch (object.kind()) {
    case Value::Kind::kString:
      if (In(kStrAttributes, name)) return Method(object, name);
      break;
    case Value::Kind::kDict:
      if (In(kDictMutators, name)) return Unsafe(object, name);
      if (In(kDictAttributes, name)) return Method(object, name);
      break;
    case Value::Kind::kList:
      if (object.list().flavor == ListFlavor::kList) {
        if (In(kListMutators, name)) return Unsafe(object, name);
        if (In(kListAttributes, name)) return Method(object, name);
      } else if (object.list().flavor == ListFlavor::kTuple &&
                 (name == "count" || name == "index")) {
        return Method(object, name);
      }
      break;
    case Value::Kind::kNamespace:
      if (const Value* v = object.ns().Find(name)) return *v;
      break;
    case Value::Kind::kLoop: {
      const LoopData& loop = object.loop();
      const int64_t length = static_cast<int64_t>(loop.items->items.size());
      const int64_t i = loop.index0;
      if (name == "index0") return Value::Int(i);
      if (name == "index") return Value::Int(i + 1);
      if (name == "revindex") return Value::Int(length - i);
      if (name == "revindex0") return Value::Int(length - i - 1);
      if (name == "first") return Value::Bool(i == 0);
      if (name == "last") return Value::Bool(i == length - 1);
      if (name == "length") return Value::Int(length);
      if (name == "depth") return Value::Int(1);
      if (name == "depth0") return Value::Int(0);
      if (name == "previtem") {
        if (i == 0) return Value::Undefined("there is no previous item");
        return loop.items->items[i - 1];
      }
      if (name == "nextitem") {
        if (i + 1 >= length) return Value::Undefined("there is no next item");
        return loop.items->items[i + 1];
      }
      if (name == "cycle") {
        return Value::Callable(
            "cycle", [object](Evaluator&, CallArgs& args) -> absl::StatusOr<Value> {
              if (args.positional.empty()) return TypeError("no items for cycling given");
              const size_t n = args.positional.size();
              return args.positional[static_cast<size_t>(object.loop().index0) % n];
            });
      }
      if (name == "changed") {
        return Value::Callable(
            "changed", [object](Evaluator&, CallArgs& args) -> absl::StatusOr<Value> {
              LoopData& state = object.loop();
              const Value current = Value::List(args.positional, ListFlavor::kTuple);
              if (state.has_changed_value && Equals(state.changed_value, current)) {
                return Value::Bool(false);
              }
              state.has_changed_value = true;
              state.changed_value = current;
              return Value::Bool(true);
            });
      }
      break;
    }
    default:
      break;
  }
  return std::nullopt;
}

absl::StatusOr<Value> Range(CallArgs& args) {
  PAGEDLLM_RETURN_IF_ERROR(ArgCount("range", args, 1, 3));
  for (const Value& v : args.positional) {
    if (!v.is_integral()) {
      return TypeError(
          absl::StrCat("'", TypeName(v), "' object cannot be interpreted as an integer"));
    }
  }
  int64_t start = 0, stop = 0, step = 1;
  if (args.positional.size() == 1) {
    stop = args.positional[0].int_value();
  } else {
    start = args.positional[0].int_value();
    stop = args.positional[1].int_value();
    if (args.positional.size() == 3) step = args.positional[2].int_value();
  }
  if (step == 0) return absl::InvalidArgumentError("range() arg 3 must not be zero");
  std::vector<Value> items;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (items.size() >= 100000) {
      return absl::InvalidArgumentError(
          "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    }
    items.push_back(Value::Int(i));
  }
  return Value::List(std::move(items));
}

// dict(*args, **kwargs) as Python builds it: a mapping or pairs, then keywords.
absl::StatusOr<DictData> BuildDict(std::string_view function, CallArgs& args) {
  if (args.positional.size() > 1) {
    return TypeError(
        absl::StrCat(Sv(function), " expected at most 1 argument, got ", args.positional.size()));
  }
  DictData dict;
  if (!args.positional.empty()) {
    const Value& source = args.positional[0];
    if (source.is_dict()) {
      dict = source.dict();
    } else {
      PAGEDLLM_ASSIGN_OR_RETURN(std::vector<Value> pairs, Iterate(source));
      for (const Value& pair : pairs) {
        PAGEDLLM_ASSIGN_OR_RETURN(std::vector<Value> kv, Iterate(pair));
        if (kv.size() != 2) return TypeError("dictionary update sequence element has wrong length");
        dict.Set(kv[0], kv[1]);
      }
    }
  }
  for (auto& [name, value] : args.keyword) dict.Set(Value::String(name), value);
  return dict;
}

absl::StatusOr<Value> StrftimeNow(Evaluator& evaluator, CallArgs& args) {
  PAGEDLLM_RETURN_IF_ERROR(ArgCount("strftime_now", args, 1, 1));
  PAGEDLLM_ASSIGN_OR_RETURN(const std::string* format,
                            StringArg("strftime_now", args.positional[0]));
  if (format->empty()) return Value::String("");
  std::string buffer(256, '\0');
  while (true) {
    const size_t n = std::strftime(buffer.data(), buffer.size(), format->c_str(), &evaluator.now());
    if (n > 0) return Value::String(buffer.substr(0, n));
    if (buffer.size() > 65536) return Value::String("");
    buffer.resize(buffer.size() * 4);
  }
}

}  // namespace

bool IsSupportedMethod(std::string_view name) { return In(kMethods, name); }
bool IsSupportedGlobal(std::string_view name) { return In(kGlobals, name); }

absl::StatusOr<Value> GetAttribute(const Value& object, const std::string& name) {
  if (object.is_undefined()) return absl::InvalidArgumentError(object.undefined_message());
  if (std::optional<Value> attribute = PythonAttribute(object, name)) return *attribute;
  if (object.is_dict()) {
    if (const Value* v = object.dict().Find(name)) return *v;
  }
  return NoAttribute(object, name);
}

absl::StatusOr<Value> GetPythonAttribute(const Value& object, const std::string& name) {
  if (object.is_undefined()) return absl::InvalidArgumentError(object.undefined_message());
  if (std::optional<Value> attribute = PythonAttribute(object, name)) return *attribute;
  return NoAttribute(object, name);
}

absl::StatusOr<Value> GetItem(const Value& object, const Value& key) {
  if (object.is_undefined()) return absl::InvalidArgumentError(object.undefined_message());
  if (object.is_dict() && !key.is_list() && !key.is_dict()) {
    if (const Value* v = object.dict().Find(key)) return *v;
  }
  const bool indexable =
      object.is_string() || (object.is_list() && object.list().flavor != ListFlavor::kIterator);
  if (indexable && key.is_integral()) {
    std::u32string chars;
    if (object.is_string()) chars = DecodeUtf8(object.string_value());
    const int64_t length = object.is_string() ? static_cast<int64_t>(chars.size())
                                              : static_cast<int64_t>(object.list().items.size());
    int64_t i = key.int_value();
    if (i < 0) i += length;
    if (i >= 0 && i < length) {
      if (!object.is_string()) return object.list().items[i];
      std::string out;
      AppendUtf8(chars[i], &out);
      return Value::String(std::move(out));
    }
  }
  if (key.is_string()) {
    if (std::optional<Value> attribute = PythonAttribute(object, key.string_value())) {
      return *attribute;
    }
    return NoAttribute(object, key.string_value());
  }
  PAGEDLLM_ASSIGN_OR_RETURN(std::string shown, PyRepr(key));
  return Value::Undefined(absl::StrCat(ObjectTypeRepr(object), " has no element ", shown));
}

Value GlobalFunction(std::string_view name) {
  if (name == "range") {
    return Value::Callable("range", [](Evaluator&, CallArgs& args) { return Range(args); });
  }
  if (name == "dict") {
    return Value::Callable("dict", [](Evaluator&, CallArgs& args) -> absl::StatusOr<Value> {
      PAGEDLLM_ASSIGN_OR_RETURN(DictData dict, BuildDict("dict", args));
      return Value::Dict(std::move(dict));
    });
  }
  if (name == "namespace") {
    return Value::Callable("namespace", [](Evaluator&, CallArgs& args) -> absl::StatusOr<Value> {
      PAGEDLLM_ASSIGN_OR_RETURN(DictData dict, BuildDict("namespace", args));
      auto ns = std::make_shared<NamespaceData>();
      for (auto& [key, value] : dict.entries) {
        if (!key.is_string()) return TypeError("namespace attribute names must be strings");
        ns->Set(key.string_value(), std::move(value));
      }
      return Value::Namespace(std::move(ns));
    });
  }
  if (name == "raise_exception") {
    return Value::Callable(
        "raise_exception", [](Evaluator&, CallArgs& args) -> absl::StatusOr<Value> {
          PAGEDLLM_RETURN_IF_ERROR(ArgCount("raise_exception", args, 1, 1));
          PAGEDLLM_ASSIGN_OR_RETURN(std::string message, PyStr(args.positional[0]));
          return absl::InvalidArgumentError(message);
        });
  }
  if (name == "strftime_now") return Value::Callable("strftime_now", StrftimeNow);
  return Value::Undefined(absl::StrCat("'", Sv(name), "' is undefined"));
}

}  // namespace pagedllm::chat_template
