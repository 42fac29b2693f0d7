#include "text/chat_template/py_format.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status.h"
#include "text/chat_template/py_string.h"

namespace pagedllm::chat_template {
namespace {

absl::Status TypeError(absl::string_view message) { return absl::InvalidArgumentError(message); }

absl::StatusOr<std::string> Join(const std::vector<Value>& items, std::string_view open,
                                 std::string_view close, bool one_tuple) {
  std::string out(open);
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out.append(", ");
    PAGEDLLM_ASSIGN_OR_RETURN(std::string item, PyRepr(items[i]));
    out.append(item);
  }
  if (one_tuple && items.size() == 1) out.push_back(',');
  out.append(close);
  return out;
}

absl::StatusOr<std::string> ContainerRepr(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kList:
      switch (v.list().flavor) {
        case ListFlavor::kList:
          return Join(v.list().items, "[", "]", false);
        case ListFlavor::kTuple:
          return Join(v.list().items, "(", ")", true);
        case ListFlavor::kIterator:
          return TypeError(
              "cannot print a generator (the result of a filter such as selectattr, map or "
              "items); convert it with |list first");
      }
      break;
    case Value::Kind::kDict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [key, value] : v.dict().entries) {
        if (!first) out.append(", ");
        first = false;
        PAGEDLLM_ASSIGN_OR_RETURN(std::string k, PyRepr(key));
        PAGEDLLM_ASSIGN_OR_RETURN(std::string item, PyRepr(value));
        absl::StrAppend(&out, k, ": ", item);
      }
      out.push_back('}');
      return out;
    }
    case Value::Kind::kNamespace: {
      DictData attributes;
      for (const auto& [name, value] : v.ns().attributes) {
        attributes.entries.emplace_back(Value::String(name), value);
      }
      PAGEDLLM_ASSIGN_OR_RETURN(std::string dict, PyRepr(Value::Dict(std::move(attributes))));
      return absl::StrCat("<Namespace ", dict, ">");
    }
    case Value::Kind::kLoop: {
      const LoopData& loop = v.loop();
      return absl::StrCat("<LoopContext ", loop.index0 + 1, "/", loop.items->items.size(), ">");
    }
    default:
      break;
  }
  return TypeError(absl::StrCat("cannot print a ", TypeName(v)));
}

void AppendJsonString(std::string_view s, bool ensure_ascii, std::string* out) {
  out->push_back('"');
  const std::u32string cps = DecodeUtf8(s);
  for (char32_t c : cps) {
    switch (c) {
      case '"':
        out->append("\\\"");
        continue;
      case '\\':
        out->append("\\\\");
        continue;
      case '\n':
        out->append("\\n");
        continue;
      case '\r':
        out->append("\\r");
        continue;
      case '\t':
        out->append("\\t");
        continue;
      case '\b':
        out->append("\\b");
        continue;
      case '\f':
        out->append("\\f");
        continue;
      default:
        break;
    }
    if (c < 0x20 || (ensure_ascii && c >= 0x7F)) {
      if (c > 0xFFFF) {
        const char32_t v = c - 0x10000;
        out->append(absl::StrFormat("\\u%04x\\u%04x", static_cast<unsigned>(0xD800 | (v >> 10)),
                                    static_cast<unsigned>(0xDC00 | (v & 0x3FF))));
      } else {
        out->append(absl::StrFormat("\\u%04x", static_cast<unsigned>(c)));
      }
      continue;
    }
    AppendUtf8(c, out);
  }
  out->push_back('"');
}

std::string JsonFloat(double f) {
  if (std::isnan(f)) return "NaN";
  if (std::isinf(f)) return f > 0 ? "Infinity" : "-Infinity";
  return FloatRepr(f);
}

absl::StatusOr<std::string> JsonKey(const Value& key) {
  switch (key.kind()) {
    case Value::Kind::kString:
      return key.string_value();
    case Value::Kind::kFloat:
      return JsonFloat(key.number_value());
    case Value::Kind::kBool:
      return std::string(key.bool_value() ? "true" : "false");
    case Value::Kind::kNone:
      return std::string("null");
    case Value::Kind::kInt:
      return absl::StrCat(key.int_value());
    default:
      return TypeError(
          absl::StrCat("keys must be str, int, float, bool or None, not ", TypeName(key)));
  }
}

class JsonWriter {
 public:
  explicit JsonWriter(const JsonDumpsOptions& options) : options_(options) {
    item_separator_ = options.item_separator.value_or(options.indent ? "," : ", ");
    key_separator_ = options.key_separator.value_or(": ");
  }

  absl::Status Write(const Value& v, int level, std::string* out) {
    switch (v.kind()) {
      case Value::Kind::kNone:
        out->append("null");
        return absl::OkStatus();
      case Value::Kind::kBool:
        out->append(v.bool_value() ? "true" : "false");
        return absl::OkStatus();
      case Value::Kind::kInt:
        absl::StrAppend(out, v.int_value());
        return absl::OkStatus();
      case Value::Kind::kFloat:
        out->append(JsonFloat(v.number_value()));
        return absl::OkStatus();
      case Value::Kind::kString:
        AppendJsonString(v.string_value(), options_.ensure_ascii, out);
        return absl::OkStatus();
      case Value::Kind::kList:
        if (v.list().flavor != ListFlavor::kIterator) return WriteList(v.list().items, level, out);
        break;
      case Value::Kind::kDict:
        return WriteDict(v.dict(), level, out);
      default:
        break;
    }
    return TypeError(absl::StrCat("Object of type ", TypeName(v), " is not JSON serializable"));
  }

 private:
  // Opens a container: the newline and indentation before its first item, when indenting.
  std::string Separator(int level, bool first) const {
    std::string s = first ? "" : item_separator_;
    if (options_.indent) {
      s.push_back('\n');
      for (int i = 0; i < level; ++i) s.append(*options_.indent);
    }
    return s;
  }

  void Close(int level, char bracket, std::string* out) const {
    if (options_.indent) {
      out->push_back('\n');
      for (int i = 0; i < level; ++i) out->append(*options_.indent);
    }
    out->push_back(bracket);
  }

  absl::Status WriteList(const std::vector<Value>& items, int level, std::string* out) {
    if (items.empty()) {
      out->append("[]");
      return absl::OkStatus();
    }
    out->push_back('[');
    for (size_t i = 0; i < items.size(); ++i) {
      out->append(Separator(level + 1, i == 0));
      PAGEDLLM_RETURN_IF_ERROR(Write(items[i], level + 1, out));
    }
    Close(level, ']', out);
    return absl::OkStatus();
  }

  absl::Status WriteDict(const DictData& dict, int level, std::string* out) {
    if (dict.entries.empty()) {
      out->append("{}");
      return absl::OkStatus();
    }
    std::vector<const std::pair<Value, Value>*> entries;
    for (const auto& entry : dict.entries) entries.push_back(&entry);
    if (options_.sort_keys) {
      absl::Status status;
      std::stable_sort(entries.begin(), entries.end(), [&](const auto* a, const auto* b) {
        absl::StatusOr<int> c = Compare(a->first, b->first, "<");
        if (!c.ok()) {
          status = c.status();
          return false;
        }
        return *c < 0;
      });
      PAGEDLLM_RETURN_IF_ERROR(status);
    }
    out->push_back('{');
    for (size_t i = 0; i < entries.size(); ++i) {
      out->append(Separator(level + 1, i == 0));
      PAGEDLLM_ASSIGN_OR_RETURN(std::string key, JsonKey(entries[i]->first));
      AppendJsonString(key, options_.ensure_ascii, out);
      out->append(key_separator_);
      PAGEDLLM_RETURN_IF_ERROR(Write(entries[i]->second, level + 1, out));
    }
    Close(level, '}', out);
    return absl::OkStatus();
  }

  const JsonDumpsOptions& options_;
  std::string item_separator_, key_separator_;
};

// One %-conversion's flags, width and precision.
struct Spec {
  bool left = false, zero = false, plus = false, space = false, alternate = false;
  int width = -1, precision = -1;
};

std::string Pad(std::string body, const Spec& spec, bool numeric) {
  const int length = static_cast<int>(CodePointCount(body));
  if (spec.width <= length) return body;
  const size_t fill = static_cast<size_t>(spec.width - length);
  if (spec.left) return body + std::string(fill, ' ');
  if (numeric && spec.zero) {
    size_t sign = 0;
    if (!body.empty() && (body[0] == '-' || body[0] == '+' || body[0] == ' ')) sign = 1;
    if (body.size() > sign + 1 && body[sign] == '0' &&
        (body[sign + 1] == 'x' || body[sign + 1] == 'X' || body[sign + 1] == 'o')) {
      sign += 2;
    }
    return body.substr(0, sign) + std::string(fill, '0') + body.substr(sign);
  }
  return std::string(fill, ' ') + body;
}

absl::StatusOr<std::string> FormatOne(char conversion, const Spec& spec, const Value& arg) {
  switch (conversion) {
    case 's':
    case 'r': {
      PAGEDLLM_ASSIGN_OR_RETURN(std::string s, conversion == 's' ? PyStr(arg) : PyRepr(arg));
      if (spec.precision >= 0) {
        std::u32string cps = DecodeUtf8(s);
        if (cps.size() > static_cast<size_t>(spec.precision)) cps.resize(spec.precision);
        s = EncodeUtf8(cps);
      }
      return Pad(std::move(s), spec, false);
    }
    case 'd':
    case 'i':
    case 'u':
    case 'x':
    case 'X':
    case 'o': {
      if (!arg.is_number()) {
        return TypeError(absl::StrCat("%", std::string(1, conversion),
                                      " format: a number is required, not ", TypeName(arg)));
      }
      const std::optional<int64_t> truncated =
          arg.is_integral() ? arg.int_value() : TruncateToInt64(arg.number_value());
      if (!truncated) return TypeError("cannot convert float to a 64-bit integer");
      const int64_t n = *truncated;
      const uint64_t magnitude = n < 0 ? 0 - static_cast<uint64_t>(n) : static_cast<uint64_t>(n);
      std::string digits;
      if (conversion == 'x' || conversion == 'X' || conversion == 'o') {
        digits = conversion == 'o' ? absl::StrFormat("%o", magnitude)
                                   : absl::StrFormat(conversion == 'x' ? "%x" : "%X", magnitude);
        if (spec.alternate)
          digits = (conversion == 'o' ? "0o" : (conversion == 'x' ? "0x" : "0X")) + digits;
      } else {
        digits = absl::StrCat(magnitude);
      }
      if (spec.precision > static_cast<int>(digits.size())) {
        digits = std::string(spec.precision - digits.size(), '0') + digits;
      }
      const std::string sign = n < 0 ? "-" : (spec.plus ? "+" : (spec.space ? " " : ""));
      return Pad(sign + digits, spec, true);
    }
    case 'f':
    case 'F':
    case 'e':
    case 'E':
    case 'g':
    case 'G': {
      if (!arg.is_number()) {
        return TypeError(absl::StrCat("must be real number, not ", TypeName(arg)));
      }
      std::string format = "%";
      if (spec.plus) format.push_back('+');
      if (spec.space) format.push_back(' ');
      if (spec.alternate) format.push_back('#');
      absl::StrAppend(&format, ".", spec.precision >= 0 ? spec.precision : 6,
                      std::string(1, conversion));
      char buffer[512];
      std::snprintf(buffer, sizeof(buffer), format.c_str(), arg.number_value());
      return Pad(buffer, spec, true);
    }
    case 'c': {
      std::string s;
      if (arg.is_string() && CodePointCount(arg.string_value()) == 1) {
        s = arg.string_value();
      } else if (arg.is_integral() && arg.int_value() >= 0 && arg.int_value() <= 0x10FFFF) {
        AppendUtf8(static_cast<char32_t>(arg.int_value()), &s);
      } else {
        return TypeError("%c requires int or char");
      }
      return Pad(std::move(s), spec, false);
    }
    default:
      return absl::UnimplementedError(
          absl::StrCat("unsupported format character '", std::string(1, conversion), "'"));
  }
}

}  // namespace

std::optional<int64_t> TruncateToInt64(double f) {
  // [-2^63, 2^63): every double in it converts exactly after truncation.
  if (!(f >= -9223372036854775808.0 && f < 9223372036854775808.0)) return std::nullopt;
  return static_cast<int64_t>(std::trunc(f));
}

std::string FloatRepr(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  char buffer[64];
  const auto result =
      std::to_chars(buffer, buffer + sizeof(buffer), f, std::chars_format::scientific);
  const std::string_view s(buffer, result.ptr - buffer);  // "-d.ddde+XX"
  const bool negative = s[0] == '-';
  const size_t e = s.find('e');
  std::string digits;
  for (char c : s.substr(negative ? 1 : 0, e - (negative ? 1 : 0))) {
    if (c != '.') digits.push_back(c);
  }
  const int exponent = std::atoi(std::string(s.substr(e + 1)).c_str());
  const int decpt = exponent + 1;  // digits before the decimal point
  std::string out = negative ? "-" : "";
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      absl::StrAppend(&out, "0.", std::string(-decpt, '0'), digits);
    } else if (decpt >= static_cast<int>(digits.size())) {
      absl::StrAppend(&out, digits, std::string(decpt - digits.size(), '0'), ".0");
    } else {
      absl::StrAppend(&out, digits.substr(0, decpt), ".", digits.substr(decpt));
    }
    return out;
  }
  out.push_back(digits[0]);
  if (digits.size() > 1) absl::StrAppend(&out, ".", digits.substr(1));
  absl::StrAppend(&out, "e", exponent < 0 ? "-" : "+",
                  absl::StrFormat("%02d", exponent < 0 ? -exponent : exponent));
  return out;
}

absl::StatusOr<std::string> PyStr(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return std::string();
    case Value::Kind::kNone:
      return std::string("None");
    case Value::Kind::kBool:
      return std::string(v.bool_value() ? "True" : "False");
    case Value::Kind::kInt:
      return absl::StrCat(v.int_value());
    case Value::Kind::kFloat:
      return FloatRepr(v.number_value());
    case Value::Kind::kString:
      return v.string_value();
    default:
      return ContainerRepr(v);
  }
}

absl::StatusOr<std::string> PyRepr(const Value& v) {
  if (v.is_string()) return PyStringRepr(v.string_value());
  if (v.is_undefined()) return std::string("Undefined");
  return PyStr(v);
}

absl::StatusOr<std::string> JsonDumps(const Value& v, const JsonDumpsOptions& options) {
  std::string out;
  JsonWriter writer(options);
  PAGEDLLM_RETURN_IF_ERROR(writer.Write(v, 0, &out));
  return out;
}

absl::StatusOr<std::string> PercentFormat(const std::string& format, const Value& args) {
  const bool is_tuple = args.is_list() && args.list().flavor == ListFlavor::kTuple;
  const std::vector<Value> single = {args};
  const std::vector<Value>& positional = is_tuple ? args.list().items : single;
  size_t next = 0;
  bool used_mapping = false;
  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      out.push_back(format[i]);
      continue;
    }
    if (++i >= format.size()) return TypeError("incomplete format");
    const Value* arg = nullptr;
    if (format[i] == '(') {
      const size_t close = format.find(')', i);
      if (close == std::string::npos) return TypeError("incomplete format key");
      if (!args.is_dict()) return TypeError("format requires a mapping");
      const Value* found = args.dict().Find(std::string_view(format).substr(i + 1, close - i - 1));
      if (found == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("KeyError: '", format.substr(i + 1, close - i - 1), "'"));
      }
      arg = found;
      used_mapping = true;
      i = close + 1;
    }
    Spec spec;
    for (; i < format.size(); ++i) {
      const char c = format[i];
      if (c == '-') {
        spec.left = true;
      } else if (c == '0') {
        spec.zero = true;
      } else if (c == '+') {
        spec.plus = true;
      } else if (c == ' ') {
        spec.space = true;
      } else if (c == '#') {
        spec.alternate = true;
      } else {
        break;
      }
    }
    const auto read_number = [&](int* target) {
      if (i < format.size() && std::isdigit(static_cast<unsigned char>(format[i]))) {
        *target = 0;
        while (i < format.size() && std::isdigit(static_cast<unsigned char>(format[i]))) {
          *target = *target * 10 + (format[i++] - '0');
        }
      }
    };
    read_number(&spec.width);
    if (i < format.size() && format[i] == '.') {
      ++i;
      spec.precision = 0;
      read_number(&spec.precision);
    }
    while (i < format.size() && (format[i] == 'h' || format[i] == 'l' || format[i] == 'L')) ++i;
    if (i >= format.size()) return TypeError("incomplete format");
    const char conversion = format[i];
    if (conversion == '%') {
      out.push_back('%');
      continue;
    }
    if (arg == nullptr) {
      if (next >= positional.size()) return TypeError("not enough arguments for format string");
      arg = &positional[next++];
    }
    PAGEDLLM_ASSIGN_OR_RETURN(std::string piece, FormatOne(conversion, spec, *arg));
    out.append(piece);
  }
  if (!used_mapping && next < positional.size() && !(args.is_dict() && !is_tuple)) {
    return TypeError("not all arguments converted during string formatting");
  }
  return out;
}

}  // namespace pagedllm::chat_template
