// The syntax tree of a parsed chat template: Jinja2's nodes, reduced to what the supported
// subset needs. Built once by the parser, immutable afterwards, shared by every render.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "text/chat_template/value.h"

namespace pagedllm::chat_template {

enum class ExprKind {
  kConst,     // value
  kName,      // name
  kList,      // args: the items
  kTuple,     // args: the items
  kDict,      // args: key0, value0, key1, value1, ...
  kGetattr,   // args[0].name  (`x.name`)
  kGetitem,   // args[0][args[1]]; args[1] may be a kSlice
  kSlice,     // args: start, stop, step; nullptr where absent
  kCall,      // args[0](args[1..], kwargs)
  kFilter,    // args[0] | name(args[1..], kwargs); args[0] is nullptr in `{% set x | f %}`
  kTest,      // args[0] is [not] name(args[1..], kwargs); negated for `is not`
  kUnary,     // name: "-", "+" or "not"; args[0]
  kBinary,    // args[0] name args[1]; name: + - * / // % ** and or
  kConcat,    // args joined with ~
  kCompare,   // args[0] ops[0] args[1] ops[1] args[2] ...; ops: == != < <= > >= in notin
  kCondExpr,  // args[0] if args[1] else args[2]; args[2] is nullptr without `else`
};

struct Expr {
  ExprKind kind = ExprKind::kConst;
  int line = 0;
  Value value;
  std::string name;
  std::vector<std::unique_ptr<Expr>> args;
  std::vector<std::pair<std::string, std::unique_ptr<Expr>>> kwargs;
  std::vector<std::string> ops;
  bool negated = false;
  // `*dyn_args` and `**dyn_kwargs` of a call, filter or test; nullptr when absent.
  std::unique_ptr<Expr> dyn_args;
  std::unique_ptr<Expr> dyn_kwargs;
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

enum class StmtKind {
  kData,         // text
  kPrint,        // {{ expr }}
  kIf,           // conditions[i] -> bodies[i] (if, elif...); else_body
  kFor,          // for targets in expr [if filter]: body; else_body when nothing was iterated
  kSet,          // set targets = expr, or set targets[0].targets[1] = expr (namespace_target)
  kSetBlock,     // set targets[0] [| filter]: body endset
  kFilterBlock,  // filter name(args) | ...: body endfilter -- prints the filtered body
  kMacro,        // macro name(params, defaults for the last ones): body
  kCallBlock,    // call [(params)] expr: body -- expr (a kCall) gets `caller` rendering the body
  kBreak,
  kContinue,
  kScope,  // a block with its own variables: {% generation %} (transformers' tag)
};

struct Stmt {
  StmtKind kind = StmtKind::kData;
  int line = 0;
  std::string text;
  std::unique_ptr<Expr> expr;
  std::vector<std::unique_ptr<Expr>> conditions;
  std::vector<Body> bodies;
  Body body;
  Body else_body;
  std::unique_ptr<Expr> filter;
  std::vector<std::string> targets;
  bool unpack = false;            // the target is a tuple (`for k, v in ...`)
  bool namespace_target = false;  // `set ns.attr = ...`
  // kMacro, kCallBlock (name "caller", params of its signature)
  std::string name;
  std::vector<std::string> params;
  std::vector<std::unique_ptr<Expr>> defaults;  // for the last defaults.size() params
  bool uses_varargs = false;
  bool uses_kwargs = false;
  bool uses_caller = false;  // the body calls caller(): a {% call %} block passes it
};

}  // namespace pagedllm::chat_template
