#include "text/chat_template/evaluator.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "text/chat_template/builtin_args.h"
#include "text/chat_template/builtins.h"
#include "text/chat_template/py_format.h"
#include "text/chat_template/py_string.h"

namespace pagedllm::chat_template {
namespace {

// Deeper macro recursion fails (Python's recursion limit stops Jinja near 250 levels; chat
// templates nest a few). Each level takes a few KB of stack: 100 fit a 1 MiB thread stack twice
// over.
constexpr int kMaxCallDepth = 100;

// Prefixes "line N: " unless the error already names a line (from a nested statement).
absl::Status WithLine(const absl::Status& status, int line) {
  if (status.ok() || status.message().rfind("line ", 0) == 0) return status;
  return absl::Status(status.code(), absl::StrCat("line ", line, ": ", status.message()));
}

absl::Status UnsupportedOperands(std::string_view op, const Value& a, const Value& b) {
  return TypeError(absl::StrCat("unsupported operand type(s) for ", Sv(op), ": '", TypeName(a),
                                "' and '", TypeName(b), "'"));
}

// A rendered prompt never needs more; `'x' * n` with a huge n fails instead of exhausting memory.
constexpr int64_t kMaxRepeatBytes = int64_t{1} << 26;

absl::StatusOr<Value> Repeat(const Value& sequence, int64_t times) {
  const int64_t unit = sequence.is_string()
                           ? static_cast<int64_t>(sequence.string_value().size())
                           : static_cast<int64_t>(sequence.list().items.size() * sizeof(Value));
  if (times > 0 && unit > 0 && times > kMaxRepeatBytes / unit) {
    return absl::ResourceExhaustedError("repetition result too large");
  }
  if (sequence.is_string()) {
    std::string out;
    for (int64_t i = 0; i < times; ++i) out += sequence.string_value();
    return Value::String(std::move(out));
  }
  std::vector<Value> out;
  for (int64_t i = 0; i < times; ++i) {
    out.insert(out.end(), sequence.list().items.begin(), sequence.list().items.end());
  }
  return Value::List(std::move(out), sequence.list().flavor);
}

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t FloorMod(int64_t a, int64_t b) {
  const int64_t r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

}  // namespace

const Value* Scope::Find(std::string_view name) const {
  for (const Scope* scope = this; scope != nullptr; scope = scope->parent_.get()) {
    for (const auto& [key, value] : scope->variables_) {
      if (key == name) return &value;
    }
  }
  return nullptr;
}

void Scope::Set(const std::string& name, Value value) {
  for (auto& [key, existing] : variables_) {
    if (key == name) {
      existing = std::move(value);
      return;
    }
  }
  variables_.emplace_back(name, std::move(value));
}

absl::StatusOr<std::string> Evaluator::Render(const Body& body, const DictData& context) {
  auto globals = std::make_shared<Scope>(nullptr);
  for (const auto& [key, value] : context.entries) {
    if (key.is_string()) globals->Set(key.string_value(), value);
  }
  auto root = std::make_shared<Scope>(globals);
  std::string out;
  PAGEDLLM_RETURN_IF_ERROR(RenderBody(body, root, &out).status());
  return out;
}

absl::StatusOr<Evaluator::Flow> Evaluator::RenderBody(const Body& body, const ScopePtr& scope,
                                                      std::string* out) {
  for (const auto& stmt : body) {
    absl::StatusOr<Flow> flow = RenderStmt(*stmt, scope, out);
    if (!flow.ok()) return WithLine(flow.status(), stmt->line);
    if (*flow != Flow::kNormal) return *flow;
  }
  return Flow::kNormal;
}

absl::StatusOr<Evaluator::Flow> Evaluator::RenderStmt(const Stmt& stmt, const ScopePtr& scope,
                                                      std::string* out) {
  switch (stmt.kind) {
    case StmtKind::kData:
      out->append(stmt.text);
      return Flow::kNormal;
    case StmtKind::kPrint: {
      PAGEDLLM_ASSIGN_OR_RETURN(Value value, Eval(*stmt.expr, scope));
      PAGEDLLM_ASSIGN_OR_RETURN(std::string text, PyStr(value));
      out->append(text);
      return Flow::kNormal;
    }
    case StmtKind::kIf:
      for (size_t i = 0; i < stmt.conditions.size(); ++i) {
        PAGEDLLM_ASSIGN_OR_RETURN(Value condition, Eval(*stmt.conditions[i], scope));
        if (Truthy(condition)) return RenderBody(stmt.bodies[i], scope, out);
      }
      return RenderBody(stmt.else_body, scope, out);
    case StmtKind::kFor:
      return RenderFor(stmt, scope, out);
    case StmtKind::kSet: {
      PAGEDLLM_ASSIGN_OR_RETURN(Value value, Eval(*stmt.expr, scope));
      PAGEDLLM_RETURN_IF_ERROR(Assign(stmt, std::move(value), *scope));
      return Flow::kNormal;
    }
    case StmtKind::kSetBlock:
    case StmtKind::kFilterBlock: {
      std::string text;
      PAGEDLLM_RETURN_IF_ERROR(
          RenderBody(stmt.body, std::make_shared<Scope>(scope), &text).status());
      Value value = Value::String(std::move(text));
      if (stmt.filter != nullptr) {
        const Value* saved = block_subject_;
        block_subject_ = &value;
        absl::StatusOr<Value> filtered = Eval(*stmt.filter, scope);
        block_subject_ = saved;
        PAGEDLLM_RETURN_IF_ERROR(filtered.status());
        value = *std::move(filtered);
      }
      if (stmt.kind == StmtKind::kSetBlock) {
        scope->Set(stmt.targets[0], std::move(value));
      } else {
        PAGEDLLM_ASSIGN_OR_RETURN(std::string filtered_text, PyStr(value));
        out->append(filtered_text);
      }
      return Flow::kNormal;
    }
    case StmtKind::kMacro:
      scope->Set(stmt.name, MakeMacro(stmt, scope));
      return Flow::kNormal;
    case StmtKind::kCallBlock: {
      PAGEDLLM_ASSIGN_OR_RETURN(Value callee, Eval(*stmt.expr->args[0], scope));
      CallArgs args;
      PAGEDLLM_RETURN_IF_ERROR(EvalArgs(*stmt.expr, 1, scope, &args));
      args.keyword.emplace_back("caller", MakeMacro(stmt, scope));
      PAGEDLLM_ASSIGN_OR_RETURN(Value result, Call(callee, args));
      PAGEDLLM_ASSIGN_OR_RETURN(std::string text, PyStr(result));
      out->append(text);
      return Flow::kNormal;
    }
    case StmtKind::kBreak:
      return Flow::kBreak;
    case StmtKind::kContinue:
      return Flow::kContinue;
    case StmtKind::kScope:
      return RenderBody(stmt.body, std::make_shared<Scope>(scope), out);
  }
  return Flow::kNormal;
}

absl::StatusOr<Evaluator::Flow> Evaluator::RenderFor(const Stmt& stmt, const ScopePtr& scope,
                                                     std::string* out) {
  PAGEDLLM_ASSIGN_OR_RETURN(Value iterable, Eval(*stmt.expr, scope));
  PAGEDLLM_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(iterable));
  if (stmt.filter != nullptr) {
    std::vector<Value> kept;
    for (Value& item : items) {
      auto filter_scope = std::make_shared<Scope>(scope);
      PAGEDLLM_RETURN_IF_ERROR(Bind(stmt.targets, stmt.unpack, item, *filter_scope));
      PAGEDLLM_ASSIGN_OR_RETURN(Value keep, Eval(*stmt.filter, filter_scope));
      if (Truthy(keep)) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    PAGEDLLM_RETURN_IF_ERROR(
        RenderBody(stmt.else_body, std::make_shared<Scope>(scope), out).status());
    return Flow::kNormal;
  }
  auto loop = std::make_shared<LoopData>();
  loop->items = std::make_shared<ListData>(ListData{std::move(items), ListFlavor::kList});
  const Value loop_value = Value::Loop(loop);
  for (size_t i = 0; i < loop->items->items.size(); ++i) {
    auto iteration = std::make_shared<Scope>(scope);
    PAGEDLLM_RETURN_IF_ERROR(Bind(stmt.targets, stmt.unpack, loop->items->items[i], *iteration));
    loop->index0 = static_cast<int64_t>(i);
    iteration->Set("loop", loop_value);
    PAGEDLLM_ASSIGN_OR_RETURN(Flow flow, RenderBody(stmt.body, iteration, out));
    if (flow == Flow::kBreak) break;
  }
  return Flow::kNormal;
}

absl::Status Evaluator::Bind(const std::vector<std::string>& targets, bool unpack,
                             const Value& value, Scope& scope) {
  if (!unpack) {
    scope.Set(targets[0], value);
    return absl::OkStatus();
  }
  PAGEDLLM_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(value));
  if (items.size() != targets.size()) {
    return absl::InvalidArgumentError(
        items.size() < targets.size()
            ? absl::StrCat("not enough values to unpack (expected ", targets.size(), ", got ",
                           items.size(), ")")
            : absl::StrCat("too many values to unpack (expected ", targets.size(), ")"));
  }
  for (size_t i = 0; i < targets.size(); ++i) scope.Set(targets[i], std::move(items[i]));
  return absl::OkStatus();
}

absl::Status Evaluator::Assign(const Stmt& stmt, Value value, Scope& scope) {
  if (!stmt.namespace_target) return Bind(stmt.targets, stmt.unpack, value, scope);
  const Value* ns = scope.Find(stmt.targets[0]);
  if (ns == nullptr || ns->kind() != Value::Kind::kNamespace) {
    return TypeError("cannot assign attribute on non-namespace object");
  }
  ns->ns().Set(stmt.targets[1], std::move(value));
  return absl::OkStatus();
}

absl::StatusOr<Value> Evaluator::Call(const Value& callee, CallArgs& args) {
  if (callee.kind() == Value::Kind::kCallable) return callee.callable().fn(*this, args);
  if (callee.is_undefined()) {
    if (callee.is_unsafe_undefined()) {
      return absl::PermissionDeniedError(callee.undefined_message());
    }
    return absl::InvalidArgumentError(callee.undefined_message());
  }
  return TypeError(absl::StrCat("'", TypeName(callee), "' object is not callable"));
}

Value Evaluator::MakeMacro(const Stmt& macro, const ScopePtr& scope) {
  const Stmt* definition = &macro;
  std::weak_ptr<Scope> defining_scope = scope;
  return Value::Callable(
      macro.name,
      [definition, defining_scope](Evaluator& evaluator, CallArgs& args) -> absl::StatusOr<Value> {
        ScopePtr defined_in = defining_scope.lock();
        if (defined_in == nullptr) {
          return absl::FailedPreconditionError(
              absl::StrCat("macro '", definition->name, "' outlived its scope"));
        }
        return evaluator.CallMacro(*definition, defined_in, args);
      });
}

absl::StatusOr<Value> Evaluator::CallMacro(const Stmt& macro, const ScopePtr& defining_scope,
                                           CallArgs& args) {
  if (call_depth_ >= kMaxCallDepth) {
    return absl::InvalidArgumentError("maximum recursion depth exceeded in macro calls");
  }
  const size_t num_params = macro.params.size();
  const size_t first_default = num_params - macro.defaults.size();
  if (args.positional.size() > num_params && !macro.uses_varargs) {
    return TypeError(
        absl::StrCat("macro '", macro.name, "' takes not more than ", num_params, " argument(s)"));
  }
  auto scope = std::make_shared<Scope>(defining_scope);
  if (macro.uses_caller) {
    Value caller = Value::Undefined("No caller defined");
    for (auto it = args.keyword.begin(); it != args.keyword.end(); ++it) {
      if (it->first == "caller") {
        caller = std::move(it->second);
        args.keyword.erase(it);
        break;
      }
    }
    scope->Set("caller", std::move(caller));
  }
  std::vector<bool> given(num_params, false);
  for (size_t i = 0; i < num_params && i < args.positional.size(); ++i) {
    scope->Set(macro.params[i], args.positional[i]);
    given[i] = true;
  }
  DictData extra_kwargs;
  for (auto& [name, value] : args.keyword) {
    const auto it = std::find(macro.params.begin(), macro.params.end(), name);
    if (it == macro.params.end()) {
      if (!macro.uses_kwargs) {
        return TypeError(
            absl::StrCat("macro '", macro.name, "' takes no keyword argument '", name, "'"));
      }
      extra_kwargs.Set(Value::String(name), value);
      continue;
    }
    const size_t index = static_cast<size_t>(it - macro.params.begin());
    if (given[index]) {
      return TypeError(
          absl::StrCat("macro '", macro.name, "' got multiple values for argument '", name, "'"));
    }
    scope->Set(name, value);
    given[index] = true;
  }
  ++call_depth_;
  struct DepthGuard {
    int* depth;
    ~DepthGuard() { --*depth; }
  } guard{&call_depth_};
  for (size_t i = 0; i < num_params; ++i) {
    if (given[i]) continue;
    if (i >= first_default) {
      PAGEDLLM_ASSIGN_OR_RETURN(Value value, Eval(*macro.defaults[i - first_default], scope));
      scope->Set(macro.params[i], std::move(value));
    } else {
      scope->Set(macro.params[i], Value::Undefined(absl::StrCat("parameter '", macro.params[i],
                                                                "' was not provided")));
    }
  }
  if (macro.uses_varargs) {
    std::vector<Value> rest;
    for (size_t i = num_params; i < args.positional.size(); ++i) rest.push_back(args.positional[i]);
    scope->Set("varargs", Value::List(std::move(rest), ListFlavor::kTuple));
  }
  if (macro.uses_kwargs) scope->Set("kwargs", Value::Dict(std::move(extra_kwargs)));
  std::string out;
  PAGEDLLM_RETURN_IF_ERROR(RenderBody(macro.body, scope, &out).status());
  return Value::String(std::move(out));
}

absl::StatusOr<Value> Evaluator::Eval(const Expr& expr, const ScopePtr& scope) {
  switch (expr.kind) {
    case ExprKind::kConst:
      return expr.value;
    case ExprKind::kName: {
      if (const Value* value = scope->Find(expr.name)) return *value;
      if (IsSupportedGlobal(expr.name)) return GlobalFunction(expr.name);
      return Value::Undefined(absl::StrCat("'", expr.name, "' is undefined"));
    }
    case ExprKind::kList:
    case ExprKind::kTuple: {
      std::vector<Value> items;
      for (const auto& arg : expr.args) {
        PAGEDLLM_ASSIGN_OR_RETURN(Value item, Eval(*arg, scope));
        items.push_back(std::move(item));
      }
      return Value::List(std::move(items),
                         expr.kind == ExprKind::kTuple ? ListFlavor::kTuple : ListFlavor::kList);
    }
    case ExprKind::kDict: {
      DictData dict;
      for (size_t i = 0; i + 1 < expr.args.size(); i += 2) {
        PAGEDLLM_ASSIGN_OR_RETURN(Value key, Eval(*expr.args[i], scope));
        PAGEDLLM_ASSIGN_OR_RETURN(Value value, Eval(*expr.args[i + 1], scope));
        if (key.is_list() || key.is_dict()) {
          return TypeError(absl::StrCat("unhashable type: '", TypeName(key), "'"));
        }
        dict.Set(std::move(key), std::move(value));
      }
      return Value::Dict(std::move(dict));
    }
    case ExprKind::kGetattr: {
      PAGEDLLM_ASSIGN_OR_RETURN(Value object, Eval(*expr.args[0], scope));
      return GetAttribute(object, expr.name);
    }
    case ExprKind::kGetitem: {
      PAGEDLLM_ASSIGN_OR_RETURN(Value object, Eval(*expr.args[0], scope));
      if (expr.args[1]->kind == ExprKind::kSlice) return EvalSlice(object, *expr.args[1], scope);
      PAGEDLLM_ASSIGN_OR_RETURN(Value key, Eval(*expr.args[1], scope));
      return GetItem(object, key);
    }
    case ExprKind::kSlice:
      return absl::InternalError("slice outside of a subscript");
    case ExprKind::kCall:
      return EvalCall(expr, scope);
    case ExprKind::kFilter:
      return EvalFilter(expr, scope);
    case ExprKind::kTest: {
      PAGEDLLM_ASSIGN_OR_RETURN(Value subject, Eval(*expr.args[0], scope));
      CallArgs args;
      PAGEDLLM_RETURN_IF_ERROR(EvalArgs(expr, 1, scope, &args));
      PAGEDLLM_ASSIGN_OR_RETURN(bool result, ApplyTest(*this, expr.name, subject, args));
      return Value::Bool(result != expr.negated);
    }
    case ExprKind::kUnary: {
      PAGEDLLM_ASSIGN_OR_RETURN(Value operand, Eval(*expr.args[0], scope));
      if (expr.name == "not") return Value::Bool(!Truthy(operand));
      if (operand.is_undefined()) return absl::InvalidArgumentError(operand.undefined_message());
      if (!operand.is_number()) {
        return TypeError(
            absl::StrCat("bad operand type for unary ", expr.name, ": '", TypeName(operand), "'"));
      }
      if (expr.name == "+") {
        return operand.kind() == Value::Kind::kFloat ? operand : Value::Int(operand.int_value());
      }
      if (operand.kind() == Value::Kind::kFloat) return Value::Float(-operand.number_value());
      if (operand.int_value() == std::numeric_limits<int64_t>::min()) {
        return TypeError("integer overflow");
      }
      return Value::Int(-operand.int_value());
    }
    case ExprKind::kBinary: {
      PAGEDLLM_ASSIGN_OR_RETURN(Value left, Eval(*expr.args[0], scope));
      if (expr.name == "and") return Truthy(left) ? Eval(*expr.args[1], scope) : left;
      if (expr.name == "or") return Truthy(left) ? left : Eval(*expr.args[1], scope);
      PAGEDLLM_ASSIGN_OR_RETURN(Value right, Eval(*expr.args[1], scope));
      return BinaryOp(expr.name, left, right);
    }
    case ExprKind::kConcat: {
      std::string out;
      for (const auto& arg : expr.args) {
        PAGEDLLM_ASSIGN_OR_RETURN(Value value, Eval(*arg, scope));
        PAGEDLLM_ASSIGN_OR_RETURN(std::string text, PyStr(value));
        out += text;
      }
      return Value::String(std::move(out));
    }
    case ExprKind::kCompare:
      return EvalCompare(expr, scope);
    case ExprKind::kCondExpr: {
      PAGEDLLM_ASSIGN_OR_RETURN(Value condition, Eval(*expr.args[1], scope));
      if (Truthy(condition)) return Eval(*expr.args[0], scope);
      if (expr.args[2] != nullptr) return Eval(*expr.args[2], scope);
      return Value::Undefined(absl::StrCat("the inline if-expression on line ", expr.line,
                                           " evaluated to false and no else section was defined."));
    }
  }
  return absl::InternalError("unknown expression");
}

absl::Status Evaluator::EvalArgs(const Expr& expr, size_t first, const ScopePtr& scope,
                                 CallArgs* args) {
  for (size_t i = first; i < expr.args.size(); ++i) {
    PAGEDLLM_ASSIGN_OR_RETURN(Value value, Eval(*expr.args[i], scope));
    args->positional.push_back(std::move(value));
  }
  if (expr.dyn_args != nullptr) {
    PAGEDLLM_ASSIGN_OR_RETURN(Value value, Eval(*expr.dyn_args, scope));
    PAGEDLLM_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(value));
    for (Value& item : items) args->positional.push_back(std::move(item));
  }
  for (const auto& [name, arg] : expr.kwargs) {
    PAGEDLLM_ASSIGN_OR_RETURN(Value value, Eval(*arg, scope));
    args->keyword.emplace_back(name, std::move(value));
  }
  if (expr.dyn_kwargs != nullptr) {
    PAGEDLLM_ASSIGN_OR_RETURN(Value value, Eval(*expr.dyn_kwargs, scope));
    if (!value.is_dict()) {
      return TypeError(absl::StrCat("argument after ** must be a mapping, not ", TypeName(value)));
    }
    for (const auto& [key, item] : value.dict().entries) {
      if (!key.is_string()) return TypeError("keywords must be strings");
      args->keyword.emplace_back(key.string_value(), item);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Value> Evaluator::EvalCall(const Expr& expr, const ScopePtr& scope) {
  PAGEDLLM_ASSIGN_OR_RETURN(Value callee, Eval(*expr.args[0], scope));
  CallArgs args;
  PAGEDLLM_RETURN_IF_ERROR(EvalArgs(expr, 1, scope, &args));
  return Call(callee, args);
}

absl::StatusOr<Value> Evaluator::EvalFilter(const Expr& expr, const ScopePtr& scope) {
  Value subject;
  if (expr.args[0] == nullptr) {
    subject = *block_subject_;
  } else {
    PAGEDLLM_ASSIGN_OR_RETURN(subject, Eval(*expr.args[0], scope));
  }
  CallArgs args;
  PAGEDLLM_RETURN_IF_ERROR(EvalArgs(expr, 1, scope, &args));
  return ApplyFilter(*this, expr.name, subject, args);
}

absl::StatusOr<Value> Evaluator::EvalSlice(const Value& object, const Expr& slice,
                                           const ScopePtr& scope) {
  Value bounds[3];
  for (int i = 0; i < 3; ++i) {
    if (slice.args[i] == nullptr) {
      bounds[i] = Value::None();
    } else {
      PAGEDLLM_ASSIGN_OR_RETURN(bounds[i], Eval(*slice.args[i], scope));
    }
  }
  // Jinja slices with Python's own [], not environment.getitem: failures are errors.
  if (object.is_undefined()) return absl::InvalidArgumentError(object.undefined_message());
  const bool sliceable =
      object.is_string() || (object.is_list() && object.list().flavor != ListFlavor::kIterator);
  if (!sliceable) {
    return TypeError(absl::StrCat("'", TypeName(object), "' object is not subscriptable"));
  }
  for (const Value& bound : bounds) {
    if (!bound.is_none() && !bound.is_integral()) {
      return TypeError("slice indices must be integers or None or have an __index__ method");
    }
  }
  const int64_t step = bounds[2].is_none() ? 1 : bounds[2].int_value();
  if (step == 0) return absl::InvalidArgumentError("slice step cannot be zero");
  std::u32string chars;
  if (object.is_string()) chars = DecodeUtf8(object.string_value());
  const int64_t length = object.is_string() ? static_cast<int64_t>(chars.size())
                                            : static_cast<int64_t>(object.list().items.size());
  // PySlice_AdjustIndices.
  const auto adjust = [&](const Value& bound, int64_t fallback) {
    if (bound.is_none()) return fallback;
    int64_t i = bound.int_value();
    if (i < 0) {
      i += length;
      if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= length) {
      i = step < 0 ? length - 1 : length;
    }
    return i;
  };
  const int64_t start = adjust(bounds[0], step < 0 ? length - 1 : 0);
  const int64_t stop = adjust(bounds[1], step < 0 ? -1 : length);
  std::vector<int64_t> indices;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) indices.push_back(i);
  if (object.is_string()) {
    std::u32string out;
    for (int64_t i : indices) out.push_back(chars[i]);
    return Value::String(EncodeUtf8(out));
  }
  std::vector<Value> out;
  for (int64_t i : indices) out.push_back(object.list().items[i]);
  return Value::List(std::move(out), object.list().flavor);
}

absl::StatusOr<Value> Evaluator::EvalCompare(const Expr& expr, const ScopePtr& scope) {
  PAGEDLLM_ASSIGN_OR_RETURN(Value left, Eval(*expr.args[0], scope));
  for (size_t i = 0; i < expr.ops.size(); ++i) {
    PAGEDLLM_ASSIGN_OR_RETURN(Value right, Eval(*expr.args[i + 1], scope));
    const std::string& op = expr.ops[i];
    bool result = false;
    if (op == "==") {
      result = Equals(left, right);
    } else if (op == "!=") {
      result = !Equals(left, right);
    } else if (op == "in" || op == "notin") {
      PAGEDLLM_ASSIGN_OR_RETURN(bool found, Contains(right, left));
      result = found == (op == "in");
    } else {
      PAGEDLLM_ASSIGN_OR_RETURN(int c, Compare(left, right, op));
      result = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
    }
    if (!result) return Value::Bool(false);
    left = std::move(right);
  }
  return Value::Bool(true);
}

absl::StatusOr<Value> BinaryOp(std::string_view op, const Value& a, const Value& b) {
  if (a.is_undefined()) return absl::InvalidArgumentError(a.undefined_message());
  if (b.is_undefined()) return absl::InvalidArgumentError(b.undefined_message());
  const bool numbers = a.is_number() && b.is_number();
  const bool integers = a.is_integral() && b.is_integral();
  if (op == "+") {
    if (integers) {
      int64_t sum = 0;
      if (__builtin_add_overflow(a.int_value(), b.int_value(), &sum)) {
        return TypeError("integer overflow");
      }
      return Value::Int(sum);
    }
    if (numbers) return Value::Float(a.number_value() + b.number_value());
    if (a.is_string() && b.is_string()) return Value::String(a.string_value() + b.string_value());
    if (a.is_string()) {
      return TypeError(absl::StrCat("can only concatenate str (not \"", TypeName(b), "\") to str"));
    }
    if (a.is_list() && b.is_list() && a.list().flavor == b.list().flavor &&
        a.list().flavor != ListFlavor::kIterator) {
      std::vector<Value> items = a.list().items;
      items.insert(items.end(), b.list().items.begin(), b.list().items.end());
      return Value::List(std::move(items), a.list().flavor);
    }
    if (a.is_list() && a.list().flavor != ListFlavor::kIterator) {
      return TypeError(absl::StrCat("can only concatenate ", TypeName(a), " (not \"", TypeName(b),
                                    "\") to ", TypeName(a)));
    }
    return UnsupportedOperands(op, a, b);
  }
  if (op == "-") {
    if (integers) {
      int64_t difference = 0;
      if (__builtin_sub_overflow(a.int_value(), b.int_value(), &difference)) {
        return TypeError("integer overflow");
      }
      return Value::Int(difference);
    }
    if (numbers) return Value::Float(a.number_value() - b.number_value());
    return UnsupportedOperands(op, a, b);
  }
  if (op == "*") {
    if (integers) {
      int64_t product = 0;
      if (__builtin_mul_overflow(a.int_value(), b.int_value(), &product)) {
        return TypeError("integer overflow");
      }
      return Value::Int(product);
    }
    if (numbers) return Value::Float(a.number_value() * b.number_value());
    const auto is_sequence = [](const Value& v) {
      return v.is_string() || (v.is_list() && v.list().flavor != ListFlavor::kIterator);
    };
    if (is_sequence(a) && b.is_integral()) return Repeat(a, b.int_value());
    if (a.is_integral() && is_sequence(b)) return Repeat(b, a.int_value());
    return UnsupportedOperands(op, a, b);
  }
  if (op == "%" && a.is_string()) {
    PAGEDLLM_ASSIGN_OR_RETURN(std::string text, PercentFormat(a.string_value(), b));
    return Value::String(std::move(text));
  }
  if (!numbers) return UnsupportedOperands(op, a, b);
  if (op == "/") {
    if (b.number_value() == 0) return absl::InvalidArgumentError("division by zero");
    return Value::Float(a.number_value() / b.number_value());
  }
  if (op == "//" || op == "%") {
    if (b.number_value() == 0) {
      return absl::InvalidArgumentError(op == "%" ? "modulo by zero"
                                                  : "integer division or modulo by zero");
    }
    if (integers) {
      if (a.int_value() == std::numeric_limits<int64_t>::min() && b.int_value() == -1) {
        return TypeError("integer overflow");
      }
      return Value::Int(op == "//" ? FloorDiv(a.int_value(), b.int_value())
                                   : FloorMod(a.int_value(), b.int_value()));
    }
    // CPython's float_divmod.
    const double x = a.number_value(), y = b.number_value();
    double mod = std::fmod(x, y);
    double div = (x - mod) / y;
    if (mod != 0) {
      if ((y < 0) != (mod < 0)) {
        mod += y;
        div -= 1.0;
      }
    } else {
      mod = std::copysign(0.0, y);
    }
    if (op == "%") return Value::Float(mod);
    double floor_div = std::copysign(0.0, x / y);
    if (div != 0) {
      floor_div = std::floor(div);
      if (div - floor_div > 0.5) floor_div += 1.0;
    }
    return Value::Float(floor_div);
  }
  if (op == "**") {
    if (integers && b.int_value() >= 0) {
      int64_t result = 1, base = a.int_value();
      for (int64_t e = b.int_value(); e > 0; --e) {
        if (__builtin_mul_overflow(result, base, &result)) return TypeError("integer overflow");
      }
      return Value::Int(result);
    }
    if (a.number_value() == 0 && b.number_value() < 0) {
      return absl::InvalidArgumentError("0.0 cannot be raised to a negative power");
    }
    return Value::Float(std::pow(a.number_value(), b.number_value()));
  }
  return absl::InternalError(absl::StrCat("unknown operator ", Sv(op)));
}

absl::StatusOr<bool> Contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined:
      return false;
    case Value::Kind::kString:
      if (!item.is_string()) {
        return TypeError(
            absl::StrCat("'in <string>' requires string as left operand, not ", TypeName(item)));
      }
      return container.string_value().find(item.string_value()) != std::string::npos;
    case Value::Kind::kList:
      for (const Value& v : container.list().items) {
        if (Equals(v, item)) return true;
      }
      return false;
    case Value::Kind::kDict:
      if (item.is_list() || item.is_dict()) {
        return TypeError(absl::StrCat("unhashable type: '", TypeName(item), "'"));
      }
      return container.dict().Find(item) != nullptr;
    default:
      return TypeError(
          absl::StrCat("argument of type '", TypeName(container), "' is not iterable"));
  }
}

absl::StatusOr<std::vector<Value>> Iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return std::vector<Value>();
    case Value::Kind::kList:
      return v.list().items;
    case Value::Kind::kString: {
      std::vector<Value> chars;
      std::string one;
      for (char32_t c : DecodeUtf8(v.string_value())) {
        one.clear();
        AppendUtf8(c, &one);
        chars.push_back(Value::String(one));
      }
      return chars;
    }
    case Value::Kind::kDict: {
      std::vector<Value> keys;
      for (const auto& entry : v.dict().entries) keys.push_back(entry.first);
      return keys;
    }
    default:
      return TypeError(absl::StrCat("'", TypeName(v), "' object is not iterable"));
  }
}

}  // namespace pagedllm::chat_template
