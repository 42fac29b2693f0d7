// Jinja2's built-in tests (jinja2/tests.py of 3.1): `x is defined`, `x is divisibleby 3`, ...
#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "text/chat_template/builtin_args.h"
#include "text/chat_template/builtins.h"
#include "text/chat_template/evaluator.h"

namespace pagedllm::chat_template {
namespace {

using TestFn = absl::StatusOr<bool> (*)(const Value&, const CallArgs&);

struct TestEntry {
  std::string_view name;
  TestFn fn;
};

// A test's one argument, named as jinja2/tests.py names it.
absl::StatusOr<Value> OneArgument(std::string_view test, const CallArgs& args,
                                  std::string_view name) {
  PAGEDLLM_ASSIGN_OR_RETURN(Params p, Params::Bind(test, args, {name}));
  if (!p.Has(0))
    return TypeError(absl::StrCat(Sv(test), "() missing 1 required positional argument"));
  return p.Get(0);
}

absl::StatusOr<bool> NoArguments(std::string_view test, const CallArgs& args, bool result) {
  PAGEDLLM_RETURN_IF_ERROR(Params::Bind(test, args, {}).status());
  return result;
}

template <int kWant>  // -1: <, -2: <=, 1: >, 2: >=
absl::StatusOr<bool> CompareTest(const Value& v, const CallArgs& args) {
  PAGEDLLM_ASSIGN_OR_RETURN(Value other, OneArgument("compare", args, "b"));
  const std::string_view op = kWant == -1 ? "<" : kWant == -2 ? "<=" : kWant == 1 ? ">" : ">=";
  PAGEDLLM_ASSIGN_OR_RETURN(int c, Compare(v, other, op));
  return kWant == -1 ? c < 0 : kWant == -2 ? c <= 0 : kWant == 1 ? c > 0 : c >= 0;
}

absl::StatusOr<bool> EqualTest(const Value& v, const CallArgs& args) {
  PAGEDLLM_ASSIGN_OR_RETURN(Value other, OneArgument("eq", args, "b"));
  return Equals(v, other);
}

absl::StatusOr<bool> NotEqualTest(const Value& v, const CallArgs& args) {
  PAGEDLLM_ASSIGN_OR_RETURN(Value other, OneArgument("ne", args, "b"));
  return !Equals(v, other);
}

absl::StatusOr<bool> Remainder(const Value& v, const Value& divisor, int64_t want) {
  PAGEDLLM_ASSIGN_OR_RETURN(Value r, BinaryOp("%", v, divisor));
  return Equals(r, Value::Int(want));
}

const TestEntry kTests[] = {
    {"boolean",
     [](const Value& v, const CallArgs& a) {
       return NoArguments("boolean", a, v.kind() == Value::Kind::kBool);
     }},
    {"callable",
     [](const Value& v, const CallArgs& a) {
       return NoArguments("callable", a,
                          v.kind() == Value::Kind::kCallable || v.is_undefined() ||
                              v.kind() == Value::Kind::kLoop);
     }},
    {"defined", [](const Value& v,
                   const CallArgs& a) { return NoArguments("defined", a, !v.is_undefined()); }},
    {"divisibleby",
     [](const Value& v, const CallArgs& a) -> absl::StatusOr<bool> {
       PAGEDLLM_ASSIGN_OR_RETURN(Value num, OneArgument("divisibleby", a, "num"));
       return Remainder(v, num, 0);
     }},
    {"eq", EqualTest},
    {"equalto", EqualTest},
    {"==", EqualTest},
    {"even",
     [](const Value& v, const CallArgs& a) -> absl::StatusOr<bool> {
       PAGEDLLM_RETURN_IF_ERROR(Params::Bind("even", a, {}).status());
       return Remainder(v, Value::Int(2), 0);
     }},
    {"false",
     [](const Value& v, const CallArgs& a) {
       return NoArguments("false", a, v.kind() == Value::Kind::kBool && !v.bool_value());
     }},
    {"float",
     [](const Value& v, const CallArgs& a) {
       return NoArguments("float", a, v.kind() == Value::Kind::kFloat);
     }},
    {"ge", CompareTest<2>},
    {">=", CompareTest<2>},
    {"gt", CompareTest<1>},
    {"greaterthan", CompareTest<1>},
    {">", CompareTest<1>},
    {"in",
     [](const Value& v, const CallArgs& a) -> absl::StatusOr<bool> {
       PAGEDLLM_ASSIGN_OR_RETURN(Value seq, OneArgument("in", a, "seq"));
       return Contains(seq, v);
     }},
    {"integer",
     [](const Value& v, const CallArgs& a) {
       return NoArguments("integer", a, v.kind() == Value::Kind::kInt);
     }},
    {"iterable",
     [](const Value& v, const CallArgs& a) {
       const Value::Kind k = v.kind();
       return NoArguments("iterable", a,
                          k == Value::Kind::kUndefined || k == Value::Kind::kString ||
                              k == Value::Kind::kList || k == Value::Kind::kDict ||
                              k == Value::Kind::kLoop);
     }},
    {"le", CompareTest<-2>},
    {"<=", CompareTest<-2>},
    {"lower",
     [](const Value& v, const CallArgs& a) -> absl::StatusOr<bool> {
       PAGEDLLM_RETURN_IF_ERROR(Params::Bind("lower", a, {}).status());
       PAGEDLLM_ASSIGN_OR_RETURN(std::string s, SoftStr(v));
       return s == PyLower(s) && s != PyUpper(s);
     }},
    {"lt", CompareTest<-1>},
    {"lessthan", CompareTest<-1>},
    {"<", CompareTest<-1>},
    {"mapping",
     [](const Value& v, const CallArgs& a) { return NoArguments("mapping", a, v.is_dict()); }},
    {"ne", NotEqualTest},
    {"!=", NotEqualTest},
    {"none", [](const Value& v, const CallArgs& a) { return NoArguments("none", a, v.is_none()); }},
    {"number",
     [](const Value& v, const CallArgs& a) { return NoArguments("number", a, v.is_number()); }},
    {"odd",
     [](const Value& v, const CallArgs& a) -> absl::StatusOr<bool> {
       PAGEDLLM_RETURN_IF_ERROR(Params::Bind("odd", a, {}).status());
       return Remainder(v, Value::Int(2), 1);
     }},
    {"sameas",
     [](const Value& v, const CallArgs& a) -> absl::StatusOr<bool> {
       PAGEDLLM_ASSIGN_OR_RETURN(Value other, OneArgument("sameas", a, "other"));
       if (v.kind() != other.kind()) return false;
       switch (v.kind()) {
         case Value::Kind::kNone:
         case Value::Kind::kUndefined:
           return v.is_none();
         case Value::Kind::kBool:
           return v.bool_value() == other.bool_value();
         case Value::Kind::kInt:  // CPython caches small ints
           return v.int_value() == other.int_value() && v.int_value() >= -5 && v.int_value() <= 256;
         case Value::Kind::kString:
         case Value::Kind::kFloat:
           return false;
         default:
           return Equals(v, other) && !v.is_dict();
       }
     }},
    {"sequence",
     [](const Value& v, const CallArgs& a) {
       const bool is_sequence = v.is_undefined() || v.is_string() || v.is_dict() ||
                                (v.is_list() && v.list().flavor != ListFlavor::kIterator);
       return NoArguments("sequence", a, is_sequence);
     }},
    {"string",
     [](const Value& v, const CallArgs& a) { return NoArguments("string", a, v.is_string()); }},
    {"true",
     [](const Value& v, const CallArgs& a) {
       return NoArguments("true", a, v.kind() == Value::Kind::kBool && v.bool_value());
     }},
    {"undefined", [](const Value& v,
                     const CallArgs& a) { return NoArguments("undefined", a, v.is_undefined()); }},
    {"upper",
     [](const Value& v, const CallArgs& a) -> absl::StatusOr<bool> {
       PAGEDLLM_RETURN_IF_ERROR(Params::Bind("upper", a, {}).status());
       PAGEDLLM_ASSIGN_OR_RETURN(std::string s, SoftStr(v));
       return s == PyUpper(s) && s != PyLower(s);
     }},
};

}  // namespace

bool IsSupportedTest(std::string_view name) {
  return std::any_of(std::begin(kTests), std::end(kTests),
                     [&](const TestEntry& t) { return t.name == name; });
}

absl::StatusOr<bool> ApplyTest(Evaluator& evaluator, std::string_view name, const Value& subject,
                               CallArgs& args) {
  for (const TestEntry& test : kTests) {
    if (test.name == name) return test.fn(subject, args);
  }
  return absl::UnimplementedError(absl::StrCat("unsupported test '", Sv(name), "'"));
}

}  // namespace pagedllm::chat_template
