#include "text/chat_template/value.h"

#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "text/chat_template/py_string.h"

namespace pagedllm::chat_template {

Value Value::Undefined(std::string message, bool is_unsafe) {
  Value v;
  v.scalar_.b = is_unsafe;
  v.payload_ = std::make_shared<std::string>(std::move(message));
  return v;
}

Value Value::None() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}

Value Value::Bool(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.scalar_.b = b;
  return v;
}

Value Value::Int(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.scalar_.i = i;
  return v;
}

Value Value::Float(double f) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.scalar_.f = f;
  return v;
}

Value Value::String(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.payload_ = std::make_shared<std::string>(std::move(s));
  return v;
}

Value Value::List(std::vector<Value> items, ListFlavor flavor) {
  Value v;
  v.kind_ = Kind::kList;
  v.payload_ = std::make_shared<ListData>(ListData{std::move(items), flavor});
  return v;
}

Value Value::Dict(DictData dict) {
  Value v;
  v.kind_ = Kind::kDict;
  v.payload_ = std::make_shared<DictData>(std::move(dict));
  return v;
}

Value Value::Namespace(std::shared_ptr<NamespaceData> ns) {
  Value v;
  v.kind_ = Kind::kNamespace;
  v.payload_ = std::move(ns);
  return v;
}

Value Value::Loop(std::shared_ptr<LoopData> loop) {
  Value v;
  v.kind_ = Kind::kLoop;
  v.payload_ = std::move(loop);
  return v;
}

Value Value::Callable(std::string name, NativeFunction fn) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.payload_ = std::make_shared<CallableData>(CallableData{std::move(name), std::move(fn)});
  return v;
}

Value Value::FromJson(const nlohmann::ordered_json& json) {
  switch (json.type()) {
    case nlohmann::ordered_json::value_t::boolean:
      return Bool(json.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Int(json.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const uint64_t u = json.get<uint64_t>();
      if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Int(static_cast<int64_t>(u));
      }
      return Float(static_cast<double>(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Float(json.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return String(json.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(json.size());
      for (const auto& item : json) items.push_back(FromJson(item));
      return List(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      DictData dict;
      dict.entries.reserve(json.size());
      for (const auto& [key, item] : json.items()) {
        dict.entries.emplace_back(String(key), FromJson(item));
      }
      return Dict(std::move(dict));
    }
    default:
      return None();
  }
}

const std::string& Value::string_value() const {
  return *static_cast<const std::string*>(payload_.get());
}
const ListData& Value::list() const { return *static_cast<const ListData*>(payload_.get()); }
const DictData& Value::dict() const { return *static_cast<const DictData*>(payload_.get()); }
NamespaceData& Value::ns() const { return *static_cast<NamespaceData*>(payload_.get()); }
LoopData& Value::loop() const { return *static_cast<LoopData*>(payload_.get()); }
const CallableData& Value::callable() const {
  return *static_cast<const CallableData*>(payload_.get());
}

const std::string& Value::undefined_message() const {
  static const std::string* const kNoMessage = new std::string("value is undefined");
  if (payload_ == nullptr) return *kNoMessage;
  return *static_cast<const std::string*>(payload_.get());
}

const Value* DictData::Find(const Value& key) const {
  for (const auto& [k, v] : entries) {
    if (Equals(k, key)) return &v;
  }
  return nullptr;
}

const Value* DictData::Find(std::string_view key) const {
  for (const auto& [k, v] : entries) {
    if (k.is_string() && k.string_value() == key) return &v;
  }
  return nullptr;
}

void DictData::Set(Value key, Value value) {
  for (auto& [k, v] : entries) {
    if (Equals(k, key)) {
      v = std::move(value);
      return;
    }
  }
  entries.emplace_back(std::move(key), std::move(value));
}

const Value* NamespaceData::Find(std::string_view name) const {
  for (const auto& [k, v] : attributes) {
    if (k == name) return &v;
  }
  return nullptr;
}

void NamespaceData::Set(const std::string& name, Value value) {
  for (auto& [k, v] : attributes) {
    if (k == name) {
      v = std::move(value);
      return;
    }
  }
  attributes.emplace_back(name, std::move(value));
}

bool Truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return false;
    case Value::Kind::kBool:
      return v.bool_value();
    case Value::Kind::kInt:
      return v.int_value() != 0;
    case Value::Kind::kFloat:
      return v.number_value() != 0.0;
    case Value::Kind::kString:
      return !v.string_value().empty();
    case Value::Kind::kList:
      return v.list().flavor == ListFlavor::kIterator || !v.list().items.empty();
    case Value::Kind::kDict:
      return !v.dict().entries.empty();
    default:
      return true;
  }
}

namespace {

bool SameIdentity(const Value& a, const Value& b) {
  switch (a.kind()) {
    case Value::Kind::kNamespace:
      return &a.ns() == &b.ns();
    case Value::Kind::kLoop:
      return &a.loop() == &b.loop();
    case Value::Kind::kCallable:
      return &a.callable() == &b.callable();
    case Value::Kind::kList:
      return &a.list() == &b.list();
    default:
      return false;
  }
}

}  // namespace

bool Equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.int_value() == b.int_value();
    return a.number_value() == b.number_value();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      return a.string_value() == b.string_value();
    case Value::Kind::kList: {
      const ListData& x = a.list();
      const ListData& y = b.list();
      if (x.flavor == ListFlavor::kIterator || y.flavor == ListFlavor::kIterator) {
        return SameIdentity(a, b);
      }
      if (x.flavor != y.flavor || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i) {
        if (!Equals(x.items[i], y.items[i])) return false;
      }
      return true;
    }
    case Value::Kind::kDict: {
      const DictData& x = a.dict();
      const DictData& y = b.dict();
      if (x.entries.size() != y.entries.size()) return false;
      for (const auto& [key, value] : x.entries) {
        const Value* other = y.Find(key);
        if (other == nullptr || !Equals(value, *other)) return false;
      }
      return true;
    }
    default:
      return SameIdentity(a, b);
  }
}

absl::StatusOr<int> Compare(const Value& a, const Value& b, std::string_view op) {
  if (a.is_undefined()) return absl::InvalidArgumentError(a.undefined_message());
  if (b.is_undefined()) return absl::InvalidArgumentError(b.undefined_message());
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) {
      return a.int_value() < b.int_value() ? -1 : (a.int_value() > b.int_value() ? 1 : 0);
    }
    const double x = a.number_value(), y = b.number_value();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    const int c = a.string_value().compare(b.string_value());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_list() && b.is_list() && a.list().flavor == b.list().flavor &&
      a.list().flavor != ListFlavor::kIterator) {
    const auto& x = a.list().items;
    const auto& y = b.list().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (Equals(x[i], y[i])) continue;
      return Compare(x[i], y[i], op);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  return absl::InvalidArgumentError(absl::StrCat("'", Sv(op),
                                                 "' not supported between instances of '",
                                                 TypeName(a), "' and '", TypeName(b), "'"));
}

std::string TypeName(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "Undefined";
    case Value::Kind::kNone:
      return "NoneType";
    case Value::Kind::kBool:
      return "bool";
    case Value::Kind::kInt:
      return "int";
    case Value::Kind::kFloat:
      return "float";
    case Value::Kind::kString:
      return "str";
    case Value::Kind::kList:
      switch (v.list().flavor) {
        case ListFlavor::kTuple:
          return "tuple";
        case ListFlavor::kIterator:
          return "generator";
        default:
          return "list";
      }
    case Value::Kind::kDict:
      return "dict";
    case Value::Kind::kNamespace:
      return "Namespace";
    case Value::Kind::kLoop:
      return "LoopContext";
    case Value::Kind::kCallable:
      return "function";
  }
  return "object";
}

std::string ObjectTypeRepr(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kNone:
      return "None";
    case Value::Kind::kNamespace:
      return "jinja2.utils.Namespace object";
    case Value::Kind::kLoop:
      return "jinja2.runtime.LoopContext object";
    case Value::Kind::kUndefined:
      return "jinja2.runtime.Undefined object";
    default:
      return TypeName(v) + " object";
  }
}

}  // namespace pagedllm::chat_template
