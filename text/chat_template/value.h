// The values a chat template computes with, modelled on the Python objects Jinja2 hands around:
// Undefined, None, bool, int, float, str, list / tuple, dict (insertion ordered), Jinja's
// namespace and loop objects, and callables (macros, globals, bound methods).
//
// A Value is small and cheap to copy: strings, lists and dicts are shared immutable payloads
// (the sandbox transformers renders in forbids mutating them); namespaces and loop objects are
// shared mutable payloads, as in Python. Not thread safe to share a namespace or loop object
// across threads; a render owns all of those it creates.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace pagedllm::chat_template {

class Value;
class Evaluator;

// Arguments of a call, as Python sees them: positional, then keyword in call order.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

using NativeFunction = std::function<absl::StatusOr<Value>(Evaluator&, CallArgs&)>;

// What a list-like value is in Python: a list, a tuple (dict.items() pairs, `(a, b)`), or a
// one-shot iterator such as a generator from `selectattr` or `items` (always truthy, no len()).
enum class ListFlavor : uint8_t { kList, kTuple, kIterator };

struct ListData;
struct DictData;
struct NamespaceData;
struct LoopData;
struct CallableData;

class Value {
 public:
  enum class Kind : uint8_t {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kDict,
    kNamespace,
    kLoop,
    kCallable,
  };

  // Undefined; `message` is what an operation that Jinja refuses on it reports ("'x' is
  // undefined"). `is_unsafe` marks the sandbox's refusal of a mutating method (calling it fails).
  Value() = default;
  static Value Undefined(std::string message, bool is_unsafe = false);
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double f);
  static Value String(std::string s);
  static Value List(std::vector<Value> items, ListFlavor flavor = ListFlavor::kList);
  static Value Dict(DictData dict);
  static Value Namespace(std::shared_ptr<NamespaceData> ns);
  static Value Loop(std::shared_ptr<LoopData> loop);
  static Value Callable(std::string name, NativeFunction fn);
  // JSON -> Python as json.loads gives it (objects keep their key order).
  static Value FromJson(const nlohmann::ordered_json& json);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  // int, float or bool (Python's numbers.Number).
  bool is_number() const {
    return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool;
  }
  // int or bool: usable as an index or count.
  bool is_integral() const { return kind_ == Kind::kInt || kind_ == Kind::kBool; }

  bool bool_value() const { return scalar_.b; }
  // For int and bool.
  int64_t int_value() const { return kind_ == Kind::kBool ? scalar_.b : scalar_.i; }
  // For any number.
  double number_value() const {
    return kind_ == Kind::kFloat ? scalar_.f : static_cast<double>(int_value());
  }
  const std::string& string_value() const;
  const ListData& list() const;
  const DictData& dict() const;
  NamespaceData& ns() const;
  LoopData& loop() const;
  const CallableData& callable() const;
  const std::string& undefined_message() const;
  bool is_unsafe_undefined() const { return kind_ == Kind::kUndefined && scalar_.b; }

 private:
  Kind kind_ = Kind::kUndefined;
  union Scalar {
    bool b;
    int64_t i;
    double f;
  } scalar_{};
  std::shared_ptr<void> payload_;
};

struct ListData {
  std::vector<Value> items;
  ListFlavor flavor = ListFlavor::kList;
};

// A Python dict: keys are hashable scalars (str, int, float, bool, None); insertion ordered;
// assigning an existing key keeps its position.
struct DictData {
  std::vector<std::pair<Value, Value>> entries;

  const Value* Find(const Value& key) const;
  const Value* Find(std::string_view key) const;
  void Set(Value key, Value value);
};

struct NamespaceData {
  std::vector<std::pair<std::string, Value>> attributes;

  const Value* Find(std::string_view name) const;
  void Set(const std::string& name, Value value);
};

// Jinja's LoopContext for the current iteration of a `for`.
struct LoopData {
  std::shared_ptr<const ListData> items;  // what the loop iterates, after its `if` filter
  int64_t index0 = 0;
  bool has_changed_value = false;  // for loop.changed()
  Value changed_value;
};

struct CallableData {
  std::string name;
  NativeFunction fn;
};

// Python's truth value.
bool Truthy(const Value& v);
// Python's ==, across int / float / bool as Python compares them; Undefined equals Undefined.
bool Equals(const Value& a, const Value& b);
// Python's <: -1, 0, 1 for numbers, strings (by code point) and same-flavor sequences;
// INVALID_ARGUMENT ("'<' not supported between ...") for anything else.
absl::StatusOr<int> Compare(const Value& a, const Value& b, std::string_view op);
// Python's type name for error messages: 'str', 'int', 'dict', 'NoneType', ...
std::string TypeName(const Value& v);
// Jinja's object_type_repr: "dict object", "None", ...
std::string ObjectTypeRepr(const Value& v);

}  // namespace pagedllm::chat_template
