// Jinja2's built-in filters (jinja2/filters.py of 3.1) and transformers' tojson, for the subset
// chat templates use.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "text/chat_template/builtin_args.h"
#include "text/chat_template/builtins.h"
#include "text/chat_template/evaluator.h"
#include "text/chat_template/py_format.h"
#include "text/chat_template/py_string.h"

namespace pagedllm::chat_template {
namespace {

Value IgnoreCase(const Value& v) {
  return v.is_string() ? Value::String(PyLower(v.string_value())) : v;
}

// make_attrgetter: "a.b.0" looks up item a, then b, then index 0, each with environment.getitem;
// None looks up nothing.
class AttrGetter {
 public:
  static absl::StatusOr<AttrGetter> Make(const Value& attribute) {
    AttrGetter getter;
    if (attribute.is_none() || attribute.is_undefined()) return getter;
    if (attribute.is_integral()) {
      getter.parts_.push_back(attribute);
      return getter;
    }
    if (!attribute.is_string()) return TypeError("attribute must be a string or an integer");
    for (absl::string_view part : absl::StrSplit(attribute.string_value(), '.')) {
      const bool digits = !part.empty() && std::all_of(part.begin(), part.end(),
                                                       [](char c) { return c >= '0' && c <= '9'; });
      getter.parts_.push_back(digits ? Value::Int(std::atoll(std::string(part).c_str()))
                                     : Value::String(std::string(part)));
    }
    return getter;
  }

  absl::StatusOr<Value> operator()(const Value& item, const Value* fallback = nullptr) const {
    Value v = item;
    for (const Value& part : parts_) {
      PAGEDLLM_ASSIGN_OR_RETURN(v, GetItem(v, part));
      if (fallback != nullptr && !fallback->is_none() && v.is_undefined()) v = *fallback;
    }
    return v;
  }

 private:
  std::vector<Value> parts_;
};

// Python's sorted(items, key=..., reverse=...): stable, and stable among equal keys when
// reversed too.
absl::Status SortByKeys(std::vector<Value>* items, std::vector<Value> keys, bool reverse) {
  std::vector<size_t> order(items->size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  absl::Status status;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (!status.ok()) return false;
    absl::StatusOr<int> c =
        reverse ? Compare(keys[b], keys[a], "<") : Compare(keys[a], keys[b], "<");
    if (!c.ok()) {
      status = c.status();
      return false;
    }
    return *c < 0;
  });
  PAGEDLLM_RETURN_IF_ERROR(status);
  std::vector<Value> sorted;
  for (size_t i : order) sorted.push_back((*items)[i]);
  *items = std::move(sorted);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Length(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return 0;
    case Value::Kind::kString:
      return static_cast<int64_t>(CodePointCount(v.string_value()));
    case Value::Kind::kList:
      if (v.list().flavor != ListFlavor::kIterator) {
        return static_cast<int64_t>(v.list().items.size());
      }
      break;
    case Value::Kind::kDict:
      return static_cast<int64_t>(v.dict().entries.size());
    case Value::Kind::kLoop:
      return static_cast<int64_t>(v.loop().items->items.size());
    default:
      break;
  }
  return TypeError(absl::StrCat("object of type '", TypeName(v), "' has no len()"));
}

// Python's float(str): surrounding whitespace allowed, "inf" / "nan" / "1e5" / "1_000.5".
std::optional<double> ParseFloat(const std::string& text) {
  std::string s = PyStrip(text, nullptr, true, true);
  std::string cleaned;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      if (i == 0 || i + 1 >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i - 1])) ||
          !std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
        return std::nullopt;
      }
      continue;
    }
    cleaned.push_back(s[i]);
  }
  if (cleaned.empty() || cleaned.find("0x") != std::string::npos ||
      cleaned.find("0X") != std::string::npos) {
    return std::nullopt;
  }
  char* end = nullptr;
  const double d = std::strtod(cleaned.c_str(), &end);
  if (end != cleaned.c_str() + cleaned.size()) return std::nullopt;
  return d;
}

// Python's int(str, base) for bases 2..36 (and the prefix a base allows).
std::optional<int64_t> ParseInt(const std::string& text, int64_t base) {
  std::string s = PyStrip(text, nullptr, true, true);
  size_t i = 0;
  bool negative = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
  if (i + 1 < s.size() && s[i] == '0') {
    const char p = static_cast<char>(std::tolower(s[i + 1]));
    if ((p == 'x' && base == 16) || (p == 'o' && base == 8) || (p == 'b' && base == 2)) {
      i += 2;
      if (i < s.size() && s[i] == '_') ++i;
    }
  }
  if (i >= s.size()) return std::nullopt;
  int64_t value = 0;
  bool previous_digit = false;
  for (; i < s.size(); ++i) {
    if (s[i] == '_') {
      if (!previous_digit) return std::nullopt;
      previous_digit = false;
      continue;
    }
    const char c = static_cast<char>(std::tolower(s[i]));
    int digit = 99;
    if (c >= '0' && c <= '9') digit = c - '0';
    if (c >= 'a' && c <= 'z') digit = c - 'a' + 10;
    if (digit >= base) return std::nullopt;
    if (__builtin_mul_overflow(value, base, &value) ||
        __builtin_add_overflow(value, digit, &value)) {
      return std::nullopt;
    }
    previous_digit = true;
  }
  if (!previous_digit) return std::nullopt;
  return negative ? -value : value;
}

Value MakeIterator(std::vector<Value> items) {
  return Value::List(std::move(items), ListFlavor::kIterator);
}

// select / reject / selectattr / rejectattr.
absl::StatusOr<Value> SelectOrReject(Evaluator& evaluator, const Value& value, CallArgs& args,
                                     bool select, bool lookup_attribute, std::string_view filter) {
  if (!Truthy(value)) return MakeIterator({});
  size_t offset = 0;
  std::optional<AttrGetter> getter;
  if (lookup_attribute) {
    if (args.positional.empty()) {
      return TypeError(absl::StrCat(Sv(filter), ": missing parameter for attribute name"));
    }
    PAGEDLLM_ASSIGN_OR_RETURN(getter, AttrGetter::Make(args.positional[0]));
    offset = 1;
  }
  std::optional<std::string> test;
  CallArgs test_args;
  if (args.positional.size() > offset) {
    if (!args.positional[offset].is_string()) return TypeError("test name must be a string");
    test = args.positional[offset].string_value();
    if (!IsSupportedTest(*test)) return TypeError(absl::StrCat("No test named '", *test, "'."));
    test_args.positional.assign(args.positional.begin() + offset + 1, args.positional.end());
    test_args.keyword = args.keyword;
  }
  PAGEDLLM_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(value));
  std::vector<Value> kept;
  for (Value& item : items) {
    Value subject = item;
    if (getter) {
      PAGEDLLM_ASSIGN_OR_RETURN(subject, (*getter)(item));
    }
    bool passed = false;
    if (test) {
      CallArgs call = test_args;
      PAGEDLLM_ASSIGN_OR_RETURN(passed, ApplyTest(evaluator, *test, subject, call));
    } else {
      passed = Truthy(subject);
    }
    if (passed == select) kept.push_back(std::move(item));
  }
  return MakeIterator(std::move(kept));
}

absl::StatusOr<Value> Map(Evaluator& evaluator, const Value& value, CallArgs& args) {
  std::function<absl::StatusOr<Value>(const Value&)> func;
  if (args.positional.empty()) {
    std::optional<Value> attribute, fallback;
    for (const auto& [name, v] : args.keyword) {
      if (name == "attribute") {
        attribute = v;
      } else if (name == "default") {
        fallback = v;
      } else {
        return TypeError(absl::StrCat("map: unexpected keyword argument '", name, "'"));
      }
    }
    if (!attribute) return TypeError("map requires a filter argument");
    PAGEDLLM_ASSIGN_OR_RETURN(AttrGetter getter, AttrGetter::Make(*attribute));
    const Value default_value = fallback.value_or(Value::None());
    func = [getter, default_value](const Value& item) { return getter(item, &default_value); };
  } else {
    if (!args.positional[0].is_string()) return TypeError("map: filter name must be a string");
    const std::string name = args.positional[0].string_value();
    if (!IsSupportedFilter(name)) return TypeError(absl::StrCat("No filter named '", name, "'."));
    CallArgs rest;
    rest.positional.assign(args.positional.begin() + 1, args.positional.end());
    rest.keyword = args.keyword;
    func = [&evaluator, name, rest](const Value& item) {
      CallArgs call = rest;
      return ApplyFilter(evaluator, name, item, call);
    };
  }
  PAGEDLLM_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(value));
  std::vector<Value> out;
  for (const Value& item : items) {
    PAGEDLLM_ASSIGN_OR_RETURN(Value mapped, func(item));
    out.push_back(std::move(mapped));
  }
  return MakeIterator(std::move(out));
}

absl::StatusOr<Value> ToJson(const Value& value, const CallArgs& args) {
  PAGEDLLM_ASSIGN_OR_RETURN(
      Params p,
      Params::Bind("tojson", args, {"ensure_ascii", "indent", "separators", "sort_keys"}));
  JsonDumpsOptions options;
  options.ensure_ascii = Truthy(p.Get(0, Value::Bool(false)));
  const Value indent = p.Get(1);
  if (indent.is_string()) {
    options.indent = indent.string_value();
  } else if (indent.is_integral()) {
    options.indent = std::string(std::max<int64_t>(0, indent.int_value()), ' ');
  } else if (!indent.is_none()) {
    return TypeError("tojson: indent must be an integer or a string");
  }
  const Value separators = p.Get(2);
  if (!separators.is_none()) {
    if (!separators.is_list() || separators.list().items.size() != 2 ||
        !separators.list().items[0].is_string() || !separators.list().items[1].is_string()) {
      return TypeError("tojson: separators must be a pair of strings");
    }
    options.item_separator = separators.list().items[0].string_value();
    options.key_separator = separators.list().items[1].string_value();
  }
  options.sort_keys = Truthy(p.Get(3, Value::Bool(false)));
  PAGEDLLM_ASSIGN_OR_RETURN(std::string json, JsonDumps(value, options));
  return Value::String(std::move(json));
}

absl::StatusOr<Value> Indent(const Value& value, const CallArgs& args) {
  PAGEDLLM_ASSIGN_OR_RETURN(Params p, Params::Bind("indent", args, {"width", "first", "blank"}));
  if (value.is_undefined()) return absl::InvalidArgumentError(value.undefined_message());
  const Value width = p.Get(0, Value::Int(4));
  std::string indentation;
  if (width.is_string()) {
    indentation = width.string_value();
  } else if (width.is_integral()) {
    indentation = std::string(std::max<int64_t>(0, width.int_value()), ' ');
  } else {
    return TypeError("indent: width must be an integer or a string");
  }
  PAGEDLLM_ASSIGN_OR_RETURN(std::string s, SoftStr(value));
  s += "\n";
  const std::vector<std::string> lines = PySplitLines(s, false);
  std::string out;
  if (Truthy(p.Get(2, Value::Bool(false)))) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i > 0) absl::StrAppend(&out, "\n", indentation);
      out += lines[i];
    }
  } else {
    out = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      out += "\n";
      if (!lines[i].empty()) out += indentation;
      out += lines[i];
    }
  }
  if (Truthy(p.Get(1, Value::Bool(false)))) out = indentation + out;
  return Value::String(std::move(out));
}

// Jinja's title filter: each run between `-`, whitespace, `(`, `{`, `[`, `<` is capitalized.
std::string JinjaTitle(std::string_view text) {
  const std::u32string cps = DecodeUtf8(text);
  const auto is_separator = [](char32_t c) {
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || IsPySpace(c);
  };
  std::string out;
  size_t i = 0;
  while (i < cps.size()) {
    const bool separator = is_separator(cps[i]);
    size_t end = i;
    while (end < cps.size() && is_separator(cps[end]) == separator) ++end;
    const std::u32string_view piece = std::u32string_view(cps).substr(i, end - i);
    out += PyUpper(EncodeUtf8(piece.substr(0, 1)));
    out += PyLower(EncodeUtf8(piece.substr(1)));
    i = end;
  }
  return out;
}

absl::StatusOr<Value> MinOrMax(const Value& value, const CallArgs& args, bool is_max) {
  PAGEDLLM_ASSIGN_OR_RETURN(
      Params p, Params::Bind(is_max ? "max" : "min", args, {"case_sensitive", "attribute"}));
  PAGEDLLM_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(value));
  if (items.empty()) return Value::Undefined("No aggregated item, sequence was empty.");
  PAGEDLLM_ASSIGN_OR_RETURN(AttrGetter getter, AttrGetter::Make(p.Get(1)));
  const bool case_sensitive = Truthy(p.Get(0, Value::Bool(false)));
  size_t best = 0;
  Value best_key;
  for (size_t i = 0; i < items.size(); ++i) {
    PAGEDLLM_ASSIGN_OR_RETURN(Value key, getter(items[i]));
    if (!case_sensitive) key = IgnoreCase(key);
    if (i > 0) {
      PAGEDLLM_ASSIGN_OR_RETURN(int c, Compare(key, best_key, is_max ? ">" : "<"));
      if (is_max ? c <= 0 : c >= 0) continue;
    }
    best = i;
    best_key = std::move(key);
  }
  return items[best];
}

absl::StatusOr<Value> Round(const Value& value, const CallArgs& args) {
  PAGEDLLM_ASSIGN_OR_RETURN(Params p, Params::Bind("round", args, {"precision", "method"}));
  if (value.is_undefined()) return absl::InvalidArgumentError(value.undefined_message());
  if (!value.is_number())
    return TypeError(absl::StrCat("type ", TypeName(value), " doesn't define __round__ method"));
  const Value precision = p.Get(0, Value::Int(0));
  if (!precision.is_integral()) return TypeError("round: precision must be an integer");
  const std::string method = p.Has(1) && p.Get(1).is_string() ? p.Get(1).string_value() : "common";
  const double scale = std::pow(10.0, static_cast<double>(precision.int_value()));
  const double x = value.number_value() * scale;
  double rounded = 0;
  if (method == "common") {
    if (value.is_integral()) return Value::Int(value.int_value());
    rounded = std::nearbyint(x);  // round half to even, as Python's round()
  } else if (method == "ceil") {
    rounded = std::ceil(x);
  } else if (method == "floor") {
    rounded = std::floor(x);
  } else {
    return TypeError("method must be common, ceil or floor");
  }
  return Value::Float(rounded / scale);
}

absl::StatusOr<Value> Sort(const Value& value, const CallArgs& args) {
  PAGEDLLM_ASSIGN_OR_RETURN(Params p,
                            Params::Bind("sort", args, {"reverse", "case_sensitive", "attribute"}));
  PAGEDLLM_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(value));
  std::vector<AttrGetter> getters;
  const Value attribute = p.Get(2);
  if (attribute.is_string()) {
    for (absl::string_view part : absl::StrSplit(attribute.string_value(), ',')) {
      PAGEDLLM_ASSIGN_OR_RETURN(AttrGetter getter,
                                AttrGetter::Make(Value::String(std::string(part))));
      getters.push_back(std::move(getter));
    }
  } else {
    PAGEDLLM_ASSIGN_OR_RETURN(AttrGetter getter, AttrGetter::Make(attribute));
    getters.push_back(std::move(getter));
  }
  const bool case_sensitive = Truthy(p.Get(1, Value::Bool(false)));
  std::vector<Value> keys;
  for (const Value& item : items) {
    std::vector<Value> parts;
    for (const AttrGetter& getter : getters) {
      PAGEDLLM_ASSIGN_OR_RETURN(Value key, getter(item));
      parts.push_back(case_sensitive ? key : IgnoreCase(key));
    }
    keys.push_back(Value::List(std::move(parts)));
  }
  PAGEDLLM_RETURN_IF_ERROR(
      SortByKeys(&items, std::move(keys), Truthy(p.Get(0, Value::Bool(false)))));
  return Value::List(std::move(items));
}

absl::StatusOr<Value> DictSort(const Value& value, const CallArgs& args) {
  PAGEDLLM_ASSIGN_OR_RETURN(Params p,
                            Params::Bind("dictsort", args, {"case_sensitive", "by", "reverse"}));
  if (value.is_undefined()) return absl::InvalidArgumentError(value.undefined_message());
  if (!value.is_dict()) return TypeError("dictsort: value must be a mapping");
  const Value by = p.Get(1, Value::String("key"));
  if (!by.is_string() || (by.string_value() != "key" && by.string_value() != "value")) {
    return TypeError("You can only sort by either \"key\" or \"value\"");
  }
  const bool by_value = by.string_value() == "value";
  const bool case_sensitive = Truthy(p.Get(0, Value::Bool(false)));
  std::vector<Value> items, keys;
  for (const auto& [k, v] : value.dict().entries) {
    items.push_back(Value::List({k, v}, ListFlavor::kTuple));
    const Value& key = by_value ? v : k;
    keys.push_back(case_sensitive ? key : IgnoreCase(key));
  }
  PAGEDLLM_RETURN_IF_ERROR(
      SortByKeys(&items, std::move(keys), Truthy(p.Get(2, Value::Bool(false)))));
  return Value::List(std::move(items));
}

absl::StatusOr<Value> Unique(const Value& value, const CallArgs& args) {
  PAGEDLLM_ASSIGN_OR_RETURN(Params p,
                            Params::Bind("unique", args, {"case_sensitive", "attribute"}));
  PAGEDLLM_ASSIGN_OR_RETURN(AttrGetter getter, AttrGetter::Make(p.Get(1)));
  const bool case_sensitive = Truthy(p.Get(0, Value::Bool(false)));
  PAGEDLLM_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(value));
  std::vector<Value> seen, out;
  for (const Value& item : items) {
    PAGEDLLM_ASSIGN_OR_RETURN(Value key, getter(item));
    if (!case_sensitive) key = IgnoreCase(key);
    if (key.is_list() || key.is_dict()) {
      return TypeError(absl::StrCat("unhashable type: '", TypeName(key), "'"));
    }
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return Equals(s, key); })) {
      continue;
    }
    seen.push_back(std::move(key));
    out.push_back(item);
  }
  return MakeIterator(std::move(out));
}

absl::StatusOr<Value> Sum(const Value& value, const CallArgs& args) {
  PAGEDLLM_ASSIGN_OR_RETURN(Params p, Params::Bind("sum", args, {"attribute", "start"}));
  PAGEDLLM_ASSIGN_OR_RETURN(AttrGetter getter, AttrGetter::Make(p.Get(0)));
  Value total = p.Get(1, Value::Int(0));
  PAGEDLLM_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(value));
  for (const Value& item : items) {
    PAGEDLLM_ASSIGN_OR_RETURN(Value term, getter(item));
    PAGEDLLM_ASSIGN_OR_RETURN(total, BinaryOp("+", total, term));
  }
  return total;
}

using FilterFn = absl::StatusOr<Value> (*)(Evaluator&, const Value&, CallArgs&);

struct FilterEntry {
  std::string_view name;
  FilterFn fn;
};

absl::StatusOr<Value> StringFilter(const Value& value, CallArgs& args, std::string_view name,
                                   std::string (*transform)(std::string_view)) {
  PAGEDLLM_RETURN_IF_ERROR(Params::Bind(name, args, {}).status());
  PAGEDLLM_ASSIGN_OR_RETURN(std::string s, SoftStr(value));
  return Value::String(transform(s));
}

const FilterEntry kFilters[] = {
    {"abs",
     [](Evaluator&, const Value& v, CallArgs& args) -> absl::StatusOr<Value> {
       PAGEDLLM_RETURN_IF_ERROR(Params::Bind("abs", args, {}).status());
       if (v.kind() == Value::Kind::kFloat) return Value::Float(std::fabs(v.number_value()));
       if (v.is_integral()) {
         if (v.int_value() == std::numeric_limits<int64_t>::min()) {
           return TypeError("integer overflow");
         }
         return Value::Int(std::llabs(v.int_value()));
       }
       return TypeError(absl::StrCat("bad operand type for abs(): '", TypeName(v), "'"));
     }},
    {"attr",
     [](Evaluator&, const Value& v, CallArgs& args) -> absl::StatusOr<Value> {
       PAGEDLLM_ASSIGN_OR_RETURN(Params p, Params::Bind("attr", args, {"name"}));
       if (!p.Get(0).is_string()) return TypeError("attr: name must be a string");
       return GetPythonAttribute(v, p.Get(0).string_value());
     }},
    {"capitalize",
     [](Evaluator&, const Value& v, CallArgs& args) {
       return StringFilter(v, args, "capitalize", PyCapitalize);
     }},
    {"count",
     [](Evaluator&, const Value& v, CallArgs& args) -> absl::StatusOr<Value> {
       PAGEDLLM_RETURN_IF_ERROR(Params::Bind("count", args, {}).status());
       PAGEDLLM_ASSIGN_OR_RETURN(int64_t n, Length(v));
       return Value::Int(n);
     }},
    {"d",
     [](Evaluator&, const Value& v, CallArgs& args) -> absl::StatusOr<Value> {
       PAGEDLLM_ASSIGN_OR_RETURN(Params p, Params::Bind("d", args, {"default_value", "boolean"}));
       const bool boolean = Truthy(p.Get(1, Value::Bool(false)));
       if (v.is_undefined() || (boolean && !Truthy(v))) return p.Get(0, Value::String(""));
       return v;
     }},
    {"default",
     [](Evaluator&, const Value& v, CallArgs& args) -> absl::StatusOr<Value> {
       PAGEDLLM_ASSIGN_OR_RETURN(Params p,
                                 Params::Bind("default", args, {"default_value", "boolean"}));
       const bool boolean = Truthy(p.Get(1, Value::Bool(false)));
       if (v.is_undefined() || (boolean && !Truthy(v))) return p.Get(0, Value::String(""));
       return v;
     }},
    {"dictsort", [](Evaluator&, const Value& v, CallArgs& args) { return DictSort(v, args); }},
    {"first",
     [](Evaluator&, const Value& v, CallArgs& args) -> absl::StatusOr<Value> {
       PAGEDLLM_RETURN_IF_ERROR(Params::Bind("first", args, {}).status());
       PAGEDLLM_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
       if (items.empty()) return Value::Undefined("No first item, sequence was empty.");
       return items.front();
     }},
    {"float",
     [](Evaluator&, const Value& v, CallArgs& args) -> absl::StatusOr<Value> {
       PAGEDLLM_ASSIGN_OR_RETURN(Params p, Params::Bind("float", args, {"default"}));
       if (v.is_undefined()) return absl::InvalidArgumentError(v.undefined_message());
       if (v.is_number()) return Value::Float(v.number_value());
       if (v.is_string()) {
         if (std::optional<double> d = ParseFloat(v.string_value())) return Value::Float(*d);
       }
       return p.Get(0, Value::Float(0.0));
     }},
    {"format",
     [](Evaluator&, const Value& v, CallArgs& args) -> absl::StatusOr<Value> {
       if (!args.positional.empty() && !args.keyword.empty()) {
         return TypeError("can't handle positional and keyword arguments at the same time");
       }
       PAGEDLLM_ASSIGN_OR_RETURN(std::string format, SoftStr(v));
       Value format_args;
       if (!args.keyword.empty()) {
         DictData kwargs;
         for (const auto& [name, value] : args.keyword) kwargs.Set(Value::String(name), value);
         format_args = Value::Dict(std::move(kwargs));
       } else {
         format_args = Value::List(args.positional, ListFlavor::kTuple);
       }
       PAGEDLLM_ASSIGN_OR_RETURN(std::string out, PercentFormat(format, format_args));
       return Value::String(std::move(out));
     }},
    {"indent", [](Evaluator&, const Value& v, CallArgs& args) { return Indent(v, args); }},
    {"int",
     [](Evaluator&, const Value& v, CallArgs& args) -> absl::StatusOr<Value> {
       PAGEDLLM_ASSIGN_OR_RETURN(Params p, Params::Bind("int", args, {"default", "base"}));
       const Value fallback = p.Get(0, Value::Int(0));
       if (v.is_undefined()) return absl::InvalidArgumentError(v.undefined_message());
       if (v.is_integral()) return Value::Int(v.int_value());
       if (v.kind() == Value::Kind::kFloat) {
         const std::optional<int64_t> i = TruncateToInt64(v.number_value());
         return i ? Value::Int(*i) : fallback;
       }
       if (v.is_string()) {
         const Value base = p.Get(1, Value::Int(10));
         if (base.is_integral() && base.int_value() >= 2 && base.int_value() <= 36) {
           if (auto i = ParseInt(v.string_value(), base.int_value())) return Value::Int(*i);
         }
         if (std::optional<double> d = ParseFloat(v.string_value())) {
           if (std::optional<int64_t> i = TruncateToInt64(*d)) return Value::Int(*i);
         }
       }
       return fallback;
     }},
    {"items",
     [](Evaluator&, const Value& v, CallArgs& args) -> absl::StatusOr<Value> {
       PAGEDLLM_RETURN_IF_ERROR(Params::Bind("items", args, {}).status());
       if (v.is_undefined()) return MakeIterator({});
       if (!v.is_dict()) return TypeError("Can only get item pairs from a mapping.");
       std::vector<Value> pairs;
       for (const auto& [key, value] : v.dict().entries) {
         pairs.push_back(Value::List({key, value}, ListFlavor::kTuple));
       }
       return MakeIterator(std::move(pairs));
     }},
    {"join",
     [](Evaluator&, const Value& v, CallArgs& args) -> absl::StatusOr<Value> {
       PAGEDLLM_ASSIGN_OR_RETURN(Params p, Params::Bind("join", args, {"d", "attribute"}));
       PAGEDLLM_ASSIGN_OR_RETURN(std::string separator, SoftStr(p.Get(0, Value::String(""))));
       PAGEDLLM_ASSIGN_OR_RETURN(AttrGetter getter, AttrGetter::Make(p.Get(1)));
       PAGEDLLM_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
       std::string out;
       for (size_t i = 0; i < items.size(); ++i) {
         if (i > 0) out += separator;
         PAGEDLLM_ASSIGN_OR_RETURN(Value item, getter(items[i]));
         PAGEDLLM_ASSIGN_OR_RETURN(std::string text, SoftStr(item));
         out += text;
       }
       return Value::String(std::move(out));
     }},
    {"last",
     [](Evaluator&, const Value& v, CallArgs& args) -> absl::StatusOr<Value> {
       PAGEDLLM_RETURN_IF_ERROR(Params::Bind("last", args, {}).status());
       if (v.is_list() && v.list().flavor == ListFlavor::kIterator) {
         return TypeError("'generator' object is not reversible");
       }
       PAGEDLLM_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
       if (items.empty()) return Value::Undefined("No last item, sequence was empty.");
       return items.back();
     }},
    {"length",
     [](Evaluator&, const Value& v, CallArgs& args) -> absl::StatusOr<Value> {
       PAGEDLLM_RETURN_IF_ERROR(Params::Bind("length", args, {}).status());
       PAGEDLLM_ASSIGN_OR_RETURN(int64_t n, Length(v));
       return Value::Int(n);
     }},
    {"list",
     [](Evaluator&, const Value& v, CallArgs& args) -> absl::StatusOr<Value> {
       PAGEDLLM_RETURN_IF_ERROR(Params::Bind("list", args, {}).status());
       PAGEDLLM_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
       return Value::List(std::move(items));
     }},
    {"lower", [](Evaluator&, const Value& v,
                 CallArgs& args) { return StringFilter(v, args, "lower", PyLower); }},
    {"map", [](Evaluator& e, const Value& v, CallArgs& args) { return Map(e, v, args); }},
    {"max", [](Evaluator&, const Value& v, CallArgs& args) { return MinOrMax(v, args, true); }},
    {"min", [](Evaluator&, const Value& v, CallArgs& args) { return MinOrMax(v, args, false); }},
    {"reject", [](Evaluator& e, const Value& v,
                  CallArgs& args) { return SelectOrReject(e, v, args, false, false, "reject"); }},
    {"rejectattr",
     [](Evaluator& e, const Value& v, CallArgs& args) {
       return SelectOrReject(e, v, args, false, true, "rejectattr");
     }},
    {"replace",
     [](Evaluator&, const Value& v, CallArgs& args) -> absl::StatusOr<Value> {
       PAGEDLLM_ASSIGN_OR_RETURN(Params p, Params::Bind("replace", args, {"old", "new", "count"}));
       if (!p.Has(0) || !p.Has(1)) return TypeError("replace() needs old and new");
       PAGEDLLM_ASSIGN_OR_RETURN(std::string s, PyStr(v));
       PAGEDLLM_ASSIGN_OR_RETURN(std::string old_text, PyStr(p.Get(0)));
       PAGEDLLM_ASSIGN_OR_RETURN(std::string new_text, PyStr(p.Get(1)));
       const Value count = p.Get(2);
       if (!count.is_none() && !count.is_integral())
         return TypeError("replace: count must be an integer");
       return Value::String(
           PyReplace(s, old_text, new_text, count.is_none() ? -1 : count.int_value()));
     }},
    {"reverse",
     [](Evaluator&, const Value& v, CallArgs& args) -> absl::StatusOr<Value> {
       PAGEDLLM_RETURN_IF_ERROR(Params::Bind("reverse", args, {}).status());
       if (v.is_string()) {
         std::u32string cps = DecodeUtf8(v.string_value());
         std::reverse(cps.begin(), cps.end());
         return Value::String(EncodeUtf8(cps));
       }
       PAGEDLLM_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(v));
       std::reverse(items.begin(), items.end());
       return MakeIterator(std::move(items));
     }},
    {"round", [](Evaluator&, const Value& v, CallArgs& args) { return Round(v, args); }},
    {"safe",
     [](Evaluator&, const Value& v, CallArgs& args) -> absl::StatusOr<Value> {
       PAGEDLLM_RETURN_IF_ERROR(Params::Bind("safe", args, {}).status());
       PAGEDLLM_ASSIGN_OR_RETURN(std::string s, SoftStr(v));
       return Value::String(std::move(s));
     }},
    {"select", [](Evaluator& e, const Value& v,
                  CallArgs& args) { return SelectOrReject(e, v, args, true, false, "select"); }},
    {"selectattr",
     [](Evaluator& e, const Value& v, CallArgs& args) {
       return SelectOrReject(e, v, args, true, true, "selectattr");
     }},
    {"sort", [](Evaluator&, const Value& v, CallArgs& args) { return Sort(v, args); }},
    {"string",
     [](Evaluator&, const Value& v, CallArgs& args) -> absl::StatusOr<Value> {
       PAGEDLLM_RETURN_IF_ERROR(Params::Bind("string", args, {}).status());
       PAGEDLLM_ASSIGN_OR_RETURN(std::string s, SoftStr(v));
       return Value::String(std::move(s));
     }},
    {"sum", [](Evaluator&, const Value& v, CallArgs& args) { return Sum(v, args); }},
    {"title", [](Evaluator&, const Value& v,
                 CallArgs& args) { return StringFilter(v, args, "title", JinjaTitle); }},
    {"tojson", [](Evaluator&, const Value& v, CallArgs& args) { return ToJson(v, args); }},
    {"trim",
     [](Evaluator&, const Value& v, CallArgs& args)
         -> absl::
             StatusOr<Value> {
               PAGEDLLM_ASSIGN_OR_RETURN(Params p, Params::Bind("trim", args, {"chars"}));
               PAGEDLLM_ASSIGN_OR_RETURN(std::string s, SoftStr(v));
               const Value chars = p.Get(0);
               if (!chars.is_none() && !chars.is_string())
                 return TypeError("trim: chars must be a string");
               return Value::String(
                   PyStrip(s, chars.is_string() ? &chars.string_value() : nullptr, true, true));
             }},
    {"unique", [](Evaluator&, const Value& v, CallArgs& args) { return Unique(v, args); }},
    {"upper", [](Evaluator&, const Value& v,
                 CallArgs& args) { return StringFilter(v, args, "upper", PyUpper); }},
};

}  // namespace

bool IsSupportedFilter(std::string_view name) {
  return std::any_of(std::begin(kFilters), std::end(kFilters),
                     [&](const FilterEntry& f) { return f.name == name; });
}

absl::StatusOr<Value> ApplyFilter(Evaluator& evaluator, std::string_view name, const Value& subject,
                                  CallArgs& args) {
  for (const FilterEntry& filter : kFilters) {
    if (filter.name == name) return filter.fn(evaluator, subject, args);
  }
  return absl::UnimplementedError(absl::StrCat("unsupported filter '", Sv(name), "'"));
}

}  // namespace pagedllm::chat_template
