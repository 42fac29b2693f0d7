// Runs a parsed template: statements write into the output, expressions compute Values with
// Jinja2's (and so Python's) semantics. Scoping follows Jinja2: `set` at the top level or in an
// `if` binds in the current scope; each loop iteration, macro call, `{% set %}` block and
// generation block gets a fresh scope whose reads fall through to the enclosing one, so
// assignments inside do not leak out (namespaces exist for that). A macro keeps a weak reference
// to the scope it was defined in and reads it when called (no reference cycle).
//
// One Evaluator per render; not thread safe. The parsed template it runs is shared and const.
#pragma once

#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "text/chat_template/ast.h"
#include "text/chat_template/value.h"

namespace pagedllm::chat_template {

// Variables visible to a part of the template: its own, then its parent's.
class Scope {
 public:
  explicit Scope(std::shared_ptr<Scope> parent) : parent_(std::move(parent)) {}

  const Value* Find(std::string_view name) const;
  void Set(const std::string& name, Value value);

 private:
  std::shared_ptr<Scope> parent_;
  std::vector<std::pair<std::string, Value>> variables_;
};

class Evaluator {
 public:
  // `now` is what strftime_now() formats.
  explicit Evaluator(std::tm now) : now_(now) {}
  Evaluator(const Evaluator&) = delete;
  Evaluator& operator=(const Evaluator&) = delete;

  // Renders `body` with the top-level variables of `context` (a dict with string keys).
  absl::StatusOr<std::string> Render(const Body& body, const DictData& context);

  // Calls a callable value (a macro, a global, a bound method) as Jinja would.
  absl::StatusOr<Value> Call(const Value& callee, CallArgs& args);

  const std::tm& now() const { return now_; }

 private:
  enum class Flow { kNormal, kBreak, kContinue };
  using ScopePtr = std::shared_ptr<Scope>;

  absl::StatusOr<Flow> RenderBody(const Body& body, const ScopePtr& scope, std::string* out);
  absl::StatusOr<Flow> RenderStmt(const Stmt& stmt, const ScopePtr& scope, std::string* out);
  absl::StatusOr<Flow> RenderFor(const Stmt& stmt, const ScopePtr& scope, std::string* out);
  absl::Status Assign(const Stmt& stmt, Value value, Scope& scope);
  absl::Status Bind(const std::vector<std::string>& targets, bool unpack, const Value& value,
                    Scope& scope);
  // A callable for a macro (or a call block's caller) defined in `scope`.
  Value MakeMacro(const Stmt& macro, const ScopePtr& scope);
  absl::StatusOr<Value> CallMacro(const Stmt& macro, const ScopePtr& defining_scope,
                                  CallArgs& args);

  absl::StatusOr<Value> Eval(const Expr& expr, const ScopePtr& scope);
  absl::StatusOr<Value> EvalCall(const Expr& expr, const ScopePtr& scope);
  absl::Status EvalArgs(const Expr& expr, size_t first, const ScopePtr& scope, CallArgs* args);
  absl::StatusOr<Value> EvalFilter(const Expr& expr, const ScopePtr& scope);
  absl::StatusOr<Value> EvalSlice(const Value& object, const Expr& slice, const ScopePtr& scope);
  absl::StatusOr<Value> EvalCompare(const Expr& expr, const ScopePtr& scope);

  std::tm now_;
  int call_depth_ = 0;
  const Value* block_subject_ = nullptr;  // the rendered body a `{% set x | filter %}` filters
};

// Python's binary operators on Values: + - * / // % ** (errors as Python raises them).
absl::StatusOr<Value> BinaryOp(std::string_view op, const Value& a, const Value& b);
// `item in container`.
absl::StatusOr<bool> Contains(const Value& container, const Value& item);
// Python's iter(): the items of a list / tuple / iterator, the characters of a string, the keys
// of a dict; nothing for Undefined.
absl::StatusOr<std::vector<Value>> Iterate(const Value& v);

}  // namespace pagedllm::chat_template
