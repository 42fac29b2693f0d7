#include "text/chat_template/parser.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "text/chat_template/builtins.h"
#include "text/chat_template/lexer.h"
#include "text/chat_template/py_string.h"

namespace pagedllm::chat_template {
namespace {

using ExprPtr = std::unique_ptr<Expr>;
using ExprResult = absl::StatusOr<ExprPtr>;
using StmtResult = absl::StatusOr<std::unique_ptr<Stmt>>;
using Names = std::vector<std::string_view>;

// Tags Jinja2 knows that this engine does not run.
constexpr std::string_view kKnownUnsupportedTags[] = {
    "block", "extends", "include", "import", "from",      "with", "autoescape",
    "call",  "filter",  "do",      "trans",  "pluralize", "debug"};

ExprPtr MakeExpr(ExprKind kind, int line) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->line = line;
  return e;
}

std::string Describe(const Token& token) {
  switch (token.type) {
    case TokenType::kEnd:
      return "end of template";
    case TokenType::kBlockEnd:
      return "end of statement block";
    case TokenType::kVariableEnd:
      return "end of print statement";
    case TokenType::kBlockBegin:
      return "begin of statement block";
    case TokenType::kVariableBegin:
      return "begin of print statement";
    case TokenType::kData:
      return "template data";
    case TokenType::kString:
      return "string literal";
    default:
      return token.value;
  }
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  absl::StatusOr<Body> Run() {
    PAGEDLLM_ASSIGN_OR_RETURN(Body body, Subparse({}));
    if (Current().type != TokenType::kEnd) {
      return Fail(Current().line, absl::StrCat("unexpected '", Describe(Current()), "'"));
    }
    for (const auto& [name, line] : called_names_) {
      if (macro_names_.count(name) == 0 && !IsSupportedGlobal(name)) {
        return Unsupported(line, absl::StrCat("function '", name, "'"));
      }
    }
    return body;
  }

 private:
  // Token stream ------------------------------------------------------------------------------
  const Token& Current() const { return tokens_[pos_]; }
  const Token& Look() const { return tokens_[std::min(pos_ + 1, tokens_.size() - 1)]; }
  void Next() {
    if (pos_ + 1 < tokens_.size()) ++pos_;
  }
  bool IsOp(std::string_view op) const {
    return Current().type == TokenType::kOperator && Current().value == op;
  }
  bool IsName(std::string_view name) const {
    return Current().type == TokenType::kName && Current().value == name;
  }
  bool IsAnyName(const Names& names) const {
    return Current().type == TokenType::kName &&
           std::find(names.begin(), names.end(), Current().value) != names.end();
  }
  bool SkipOp(std::string_view op) {
    if (!IsOp(op)) return false;
    Next();
    return true;
  }
  bool SkipName(std::string_view name) {
    if (!IsName(name)) return false;
    Next();
    return true;
  }

  absl::Status Fail(int line, std::string_view message) const {
    return absl::InvalidArgumentError(absl::StrCat("line ", line, ": ", Sv(message)));
  }
  absl::Status Unsupported(int line, std::string_view what) const {
    return absl::UnimplementedError(absl::StrCat("line ", line, ": unsupported ", Sv(what)));
  }
  absl::Status Expected(std::string_view what) const {
    return Fail(Current().line,
                absl::StrCat("expected ", Sv(what), ", got '", Describe(Current()), "'"));
  }
  absl::Status ExpectOp(std::string_view op) {
    if (!SkipOp(op)) return Expected(absl::StrCat("'", Sv(op), "'"));
    return absl::OkStatus();
  }
  absl::Status ExpectType(TokenType type, std::string_view what) {
    if (Current().type != type) return Expected(what);
    Next();
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> ExpectName() {
    if (Current().type != TokenType::kName) return Expected("a name");
    std::string name = Current().value;
    Next();
    return name;
  }

  // Statements --------------------------------------------------------------------------------

  // Template data, {{ }} and {% %} until a `{% name %}` with a name in `end_tokens` (left as
  // the current token) or the end of the template.
  absl::StatusOr<Body> Subparse(const Names& end_tokens) {
    Body body;
    while (Current().type != TokenType::kEnd) {
      const Token& token = Current();
      if (token.type == TokenType::kData) {
        auto stmt = std::make_unique<Stmt>();
        stmt->kind = StmtKind::kData;
        stmt->line = token.line;
        stmt->text = token.value;
        body.push_back(std::move(stmt));
        Next();
      } else if (token.type == TokenType::kVariableBegin) {
        auto stmt = std::make_unique<Stmt>();
        stmt->kind = StmtKind::kPrint;
        stmt->line = token.line;
        Next();
        PAGEDLLM_ASSIGN_OR_RETURN(stmt->expr, ParseTuple(TupleOptions{}));
        PAGEDLLM_RETURN_IF_ERROR(ExpectType(TokenType::kVariableEnd, "'}}'"));
        body.push_back(std::move(stmt));
      } else if (token.type == TokenType::kBlockBegin) {
        Next();
        if (IsAnyName(end_tokens)) return body;
        PAGEDLLM_ASSIGN_OR_RETURN(std::unique_ptr<Stmt> stmt, ParseStatement());
        body.push_back(std::move(stmt));
        PAGEDLLM_RETURN_IF_ERROR(ExpectType(TokenType::kBlockEnd, "'%}'"));
      } else {
        return Fail(token.line, absl::StrCat("unexpected '", Describe(token), "'"));
      }
    }
    if (!end_tokens.empty()) {
      return Fail(Current().line,
                  absl::StrCat("unexpected end of template, expected ",
                               absl::StrJoin(end_tokens, " or ",
                                             [](std::string* out, std::string_view name) {
                                               absl::StrAppend(out, "'", Sv(name), "'");
                                             })));
    }
    return body;
  }

  // `%}` then a body up to one of `end_tokens`; consumes the end tag's name if `drop_needle`.
  absl::StatusOr<Body> ParseStatements(const Names& end_tokens, bool drop_needle) {
    SkipOp(":");
    PAGEDLLM_RETURN_IF_ERROR(ExpectType(TokenType::kBlockEnd, "'%}'"));
    PAGEDLLM_ASSIGN_OR_RETURN(Body body, Subparse(end_tokens));
    if (drop_needle) Next();
    return body;
  }

  StmtResult ParseStatement() {
    const Token& token = Current();
    if (token.type != TokenType::kName) return Fail(token.line, "tag name expected");
    const std::string& tag = token.value;
    if (tag == "for") return ParseFor();
    if (tag == "if") return ParseIf();
    if (tag == "set") return ParseSet();
    if (tag == "macro") return ParseMacro();
    if (tag == "call") return ParseCallBlock();
    if (tag == "filter") {
      auto stmt = NewStmt(StmtKind::kFilterBlock);
      PAGEDLLM_ASSIGN_OR_RETURN(stmt->filter, ParseFilters(nullptr, /*start_inline=*/true));
      PAGEDLLM_ASSIGN_OR_RETURN(stmt->body, ParseStatements({"endfilter"}, true));
      return stmt;
    }
    if (tag == "print") {
      auto stmt = NewStmt(StmtKind::kPrint);
      PAGEDLLM_ASSIGN_OR_RETURN(stmt->expr, ParseTuple(TupleOptions{}));
      return stmt;
    }
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) return Fail(token.line, absl::StrCat("'", tag, "' outside of a loop"));
      return NewStmt(tag == "break" ? StmtKind::kBreak : StmtKind::kContinue);
    }
    if (tag == "generation") {
      auto stmt = NewStmt(StmtKind::kScope);
      PAGEDLLM_ASSIGN_OR_RETURN(stmt->body, ParseStatements({"endgeneration"}, true));
      return stmt;
    }
    if (tag.rfind("end", 0) == 0 || tag == "elif" || tag == "else") {
      return Fail(token.line, absl::StrCat("unexpected '", tag, "' tag"));
    }
    if (std::find(std::begin(kKnownUnsupportedTags), std::end(kKnownUnsupportedTags), tag) !=
        std::end(kKnownUnsupportedTags)) {
      return Unsupported(token.line, absl::StrCat("tag '", tag, "'"));
    }
    return Unsupported(token.line, absl::StrCat("tag '", tag, "' (not a Jinja2 tag)"));
  }

  // A statement of `kind` at the current (tag name) token, which it consumes.
  std::unique_ptr<Stmt> NewStmt(StmtKind kind) {
    auto stmt = std::make_unique<Stmt>();
    stmt->kind = kind;
    stmt->line = Current().line;
    Next();
    return stmt;
  }

  // Assignment targets: `name` or a flat tuple `a, b` / `(a, b)`; sets stmt->targets / unpack.
  absl::Status ParseAssignTarget(Stmt* stmt, const Names& extra_end_rules) {
    const bool parenthesized = SkipOp("(");
    while (true) {
      if (!stmt->targets.empty() || stmt->unpack) {
        if (!SkipOp(",")) break;
        stmt->unpack = true;
        if (parenthesized ? IsOp(")") : (IsAnyName(extra_end_rules) || IsOp("="))) break;
      }
      if (Current().type != TokenType::kName) return Expected("a variable name");
      const std::string& name = Current().value;
      if (name == "true" || name == "false" || name == "none" || name == "True" ||
          name == "False" || name == "None") {
        return Fail(Current().line, absl::StrCat("can't assign to '", name, "'"));
      }
      stmt->targets.push_back(name);
      Next();
    }
    if (parenthesized) PAGEDLLM_RETURN_IF_ERROR(ExpectOp(")"));
    return absl::OkStatus();
  }

  StmtResult ParseFor() {
    auto stmt = NewStmt(StmtKind::kFor);
    PAGEDLLM_RETURN_IF_ERROR(ParseAssignTarget(stmt.get(), {"in"}));
    if (!SkipName("in")) return Expected("'in'");
    TupleOptions options;
    options.with_condexpr = false;
    options.extra_end_rules = {"recursive"};
    PAGEDLLM_ASSIGN_OR_RETURN(stmt->expr, ParseTuple(options));
    if (SkipName("if")) {
      PAGEDLLM_ASSIGN_OR_RETURN(stmt->filter, ParseExpression(true));
    }
    if (IsName("recursive")) return Unsupported(Current().line, "recursive loops");
    ++loop_depth_;
    auto body = ParseStatements({"endfor", "else"}, false);
    --loop_depth_;
    PAGEDLLM_RETURN_IF_ERROR(body.status());
    stmt->body = std::move(body).value();
    const bool has_else = IsName("else");
    Next();
    if (has_else) {
      PAGEDLLM_ASSIGN_OR_RETURN(stmt->else_body, ParseStatements({"endfor"}, true));
    }
    return stmt;
  }

  StmtResult ParseIf() {
    auto stmt = NewStmt(StmtKind::kIf);
    while (true) {
      TupleOptions options;
      options.with_condexpr = false;
      PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr condition, ParseTuple(options));
      PAGEDLLM_ASSIGN_OR_RETURN(Body body, ParseStatements({"elif", "else", "endif"}, false));
      stmt->conditions.push_back(std::move(condition));
      stmt->bodies.push_back(std::move(body));
      const std::string tag = Current().value;
      Next();
      if (tag == "elif") continue;
      if (tag == "else") {
        PAGEDLLM_ASSIGN_OR_RETURN(stmt->else_body, ParseStatements({"endif"}, true));
      }
      return stmt;
    }
  }

  StmtResult ParseSet() {
    auto stmt = NewStmt(StmtKind::kSet);
    if (Current().type == TokenType::kName && Look().type == TokenType::kOperator &&
        Look().value == ".") {
      stmt->namespace_target = true;
      stmt->targets.push_back(Current().value);
      Next();
      Next();
      PAGEDLLM_ASSIGN_OR_RETURN(std::string attribute, ExpectName());
      stmt->targets.push_back(std::move(attribute));
    } else {
      PAGEDLLM_RETURN_IF_ERROR(ParseAssignTarget(stmt.get(), {}));
    }
    if (SkipOp("=")) {
      PAGEDLLM_ASSIGN_OR_RETURN(stmt->expr, ParseTuple(TupleOptions{}));
      return stmt;
    }
    if (stmt->namespace_target || stmt->unpack) {
      return Unsupported(stmt->line, "block set ({% set %}...{% endset %}) of this target");
    }
    stmt->kind = StmtKind::kSetBlock;
    if (IsOp("|")) {
      PAGEDLLM_ASSIGN_OR_RETURN(stmt->filter, ParseFilters(nullptr));
    }
    PAGEDLLM_ASSIGN_OR_RETURN(stmt->body, ParseStatements({"endset"}, true));
    return stmt;
  }

  // `(a, b=default, ...)` of a macro or call block.
  absl::Status ParseSignature(Stmt* stmt) {
    PAGEDLLM_RETURN_IF_ERROR(ExpectOp("("));
    while (!IsOp(")")) {
      if (!stmt->params.empty()) PAGEDLLM_RETURN_IF_ERROR(ExpectOp(","));
      PAGEDLLM_ASSIGN_OR_RETURN(std::string param, ExpectName());
      stmt->params.push_back(std::move(param));
      if (SkipOp("=")) {
        PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
        stmt->defaults.push_back(std::move(value));
      } else if (!stmt->defaults.empty()) {
        return Fail(stmt->line, "non-default argument follows default argument");
      }
    }
    return ExpectOp(")");
  }

  // A macro-like body up to `end_tag`: its own loop depth, and whether it reads varargs,
  // kwargs or caller.
  absl::Status ParseMacroBody(Stmt* stmt, std::string_view end_tag) {
    const int saved_depth = loop_depth_;
    loop_depth_ = 0;
    ++macro_depth_;
    const size_t names_before = used_names_.size();
    auto body = ParseStatements({end_tag}, true);
    loop_depth_ = saved_depth;
    --macro_depth_;
    PAGEDLLM_RETURN_IF_ERROR(body.status());
    stmt->body = std::move(body).value();
    for (size_t i = names_before; i < used_names_.size(); ++i) {
      if (used_names_[i] == "varargs") stmt->uses_varargs = true;
      if (used_names_[i] == "kwargs") stmt->uses_kwargs = true;
      if (used_names_[i] == "caller") stmt->uses_caller = true;
    }
    return absl::OkStatus();
  }

  StmtResult ParseMacro() {
    auto stmt = NewStmt(StmtKind::kMacro);
    PAGEDLLM_ASSIGN_OR_RETURN(stmt->name, ExpectName());
    PAGEDLLM_RETURN_IF_ERROR(ParseSignature(stmt.get()));
    PAGEDLLM_RETURN_IF_ERROR(ParseMacroBody(stmt.get(), "endmacro"));
    macro_names_.insert(stmt->name);
    return stmt;
  }

  // {% call [(params)] macro(args) %}body{% endcall %}: the macro's caller() renders the body.
  StmtResult ParseCallBlock() {
    auto stmt = NewStmt(StmtKind::kCallBlock);
    stmt->name = "caller";
    if (IsOp("(")) PAGEDLLM_RETURN_IF_ERROR(ParseSignature(stmt.get()));
    PAGEDLLM_ASSIGN_OR_RETURN(stmt->expr, ParseExpression(true));
    if (stmt->expr->kind != ExprKind::kCall)
      return Fail(stmt->line, "expected a call after 'call'");
    PAGEDLLM_RETURN_IF_ERROR(ParseMacroBody(stmt.get(), "endcall"));
    return stmt;
  }

  // Expressions -------------------------------------------------------------------------------

  struct TupleOptions {
    bool with_condexpr = true;
    Names extra_end_rules;
    bool explicit_parentheses = false;
  };

  bool IsTupleEnd(const Names& extra_end_rules) const {
    const TokenType type = Current().type;
    return type == TokenType::kVariableEnd || type == TokenType::kBlockEnd || IsOp(")") ||
           IsAnyName(extra_end_rules);
  }

  ExprResult ParseTuple(const TupleOptions& options) {
    const int line = Current().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) PAGEDLLM_RETURN_IF_ERROR(ExpectOp(","));
      if (IsTupleEnd(options.extra_end_rules)) break;
      ExprResult item = ParseExpression(options.with_condexpr);
      PAGEDLLM_RETURN_IF_ERROR(item.status());
      items.push_back(std::move(item).value());
      if (!IsOp(",")) break;
      is_tuple = true;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!options.explicit_parentheses) return Expected("an expression");
    }
    ExprPtr tuple = MakeExpr(ExprKind::kTuple, line);
    tuple->args = std::move(items);
    return tuple;
  }

  ExprResult ParseExpression(bool with_condexpr) {
    if (!with_condexpr) return ParseOr();
    PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr expr, ParseOr());
    while (IsName("if")) {
      const int line = Current().line;
      Next();
      PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr test, ParseOr());
      ExprPtr otherwise;
      if (SkipName("else")) {
        PAGEDLLM_ASSIGN_OR_RETURN(otherwise, ParseExpression(true));
      }
      ExprPtr cond = MakeExpr(ExprKind::kCondExpr, line);
      cond->args.push_back(std::move(expr));
      cond->args.push_back(std::move(test));
      cond->args.push_back(std::move(otherwise));
      expr = std::move(cond);
    }
    return expr;
  }

  ExprPtr Binary(std::string op, ExprPtr left, ExprPtr right, int line) {
    ExprPtr e = MakeExpr(ExprKind::kBinary, line);
    e->name = std::move(op);
    e->args.push_back(std::move(left));
    e->args.push_back(std::move(right));
    return e;
  }

  ExprResult ParseOr() {
    PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr left, ParseAnd());
    while (IsName("or")) {
      const int line = Current().line;
      Next();
      PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr right, ParseAnd());
      left = Binary("or", std::move(left), std::move(right), line);
    }
    return left;
  }

  ExprResult ParseAnd() {
    PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr left, ParseNot());
    while (IsName("and")) {
      const int line = Current().line;
      Next();
      PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr right, ParseNot());
      left = Binary("and", std::move(left), std::move(right), line);
    }
    return left;
  }

  ExprResult ParseNot() {
    if (IsName("not")) {
      ExprPtr e = MakeExpr(ExprKind::kUnary, Current().line);
      e->name = "not";
      Next();
      PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr operand, ParseNot());
      e->args.push_back(std::move(operand));
      return e;
    }
    return ParseCompare();
  }

  ExprResult ParseCompare() {
    const int line = Current().line;
    PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr first, ParseMath1());
    ExprPtr compare;
    while (true) {
      std::string op;
      if (Current().type == TokenType::kOperator &&
          (IsOp("==") || IsOp("!=") || IsOp("<") || IsOp("<=") || IsOp(">") || IsOp(">="))) {
        op = Current().value;
        Next();
      } else if (IsName("in")) {
        op = "in";
        Next();
      } else if (IsName("not") && Look().type == TokenType::kName && Look().value == "in") {
        op = "notin";
        Next();
        Next();
      } else {
        break;
      }
      if (compare == nullptr) {
        compare = MakeExpr(ExprKind::kCompare, line);
        compare->args.push_back(std::move(first));
      }
      PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr operand, ParseMath1());
      compare->ops.push_back(std::move(op));
      compare->args.push_back(std::move(operand));
    }
    return compare != nullptr ? std::move(compare) : std::move(first);
  }

  ExprResult ParseMath1() {
    PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr left, ParseConcat());
    while (IsOp("+") || IsOp("-")) {
      const std::string op = Current().value;
      const int line = Current().line;
      Next();
      PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr right, ParseConcat());
      left = Binary(op, std::move(left), std::move(right), line);
    }
    return left;
  }

  ExprResult ParseConcat() {
    const int line = Current().line;
    PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr first, ParseMath2());
    if (!IsOp("~")) return first;
    ExprPtr concat = MakeExpr(ExprKind::kConcat, line);
    concat->args.push_back(std::move(first));
    while (SkipOp("~")) {
      PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr next, ParseMath2());
      concat->args.push_back(std::move(next));
    }
    return concat;
  }

  ExprResult ParseMath2() {
    PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr left, ParsePow());
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      const std::string op = Current().value;
      const int line = Current().line;
      Next();
      PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr right, ParsePow());
      left = Binary(op, std::move(left), std::move(right), line);
    }
    return left;
  }

  ExprResult ParsePow() {
    PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr left, ParseUnary(true));
    while (IsOp("**")) {
      const int line = Current().line;
      Next();
      PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr right, ParseUnary(true));
      left = Binary("**", std::move(left), std::move(right), line);
    }
    return left;
  }

  ExprResult ParseUnary(bool with_filter) {
    ExprPtr node;
    if (IsOp("-") || IsOp("+")) {
      node = MakeExpr(ExprKind::kUnary, Current().line);
      node->name = Current().value;
      Next();
      PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr operand, ParseUnary(false));
      node->args.push_back(std::move(operand));
    } else {
      PAGEDLLM_ASSIGN_OR_RETURN(node, ParsePrimary());
    }
    PAGEDLLM_ASSIGN_OR_RETURN(node, ParsePostfix(std::move(node)));
    if (with_filter) {
      PAGEDLLM_ASSIGN_OR_RETURN(node, ParseFilterExpr(std::move(node)));
    }
    return node;
  }

  ExprResult ParsePrimary() {
    const Token& token = Current();
    const int line = token.line;
    if (token.type == TokenType::kName) {
      ExprPtr node = MakeExpr(ExprKind::kConst, line);
      if (token.value == "true" || token.value == "True") {
        node->value = Value::Bool(true);
      } else if (token.value == "false" || token.value == "False") {
        node->value = Value::Bool(false);
      } else if (token.value == "none" || token.value == "None") {
        node->value = Value::None();
      } else {
        node->kind = ExprKind::kName;
        node->name = token.value;
        used_names_.push_back(token.value);
      }
      Next();
      return node;
    }
    if (token.type == TokenType::kString) {
      std::string text;
      while (Current().type == TokenType::kString) {
        text += Current().value;
        Next();
      }
      ExprPtr node = MakeExpr(ExprKind::kConst, line);
      node->value = Value::String(std::move(text));
      return node;
    }
    if (token.type == TokenType::kInteger || token.type == TokenType::kFloat) {
      ExprPtr node = MakeExpr(ExprKind::kConst, line);
      if (token.type == TokenType::kInteger) {
        int64_t i = 0;
        if (!absl::SimpleAtoi(token.value, &i)) return Fail(line, "bad integer literal");
        node->value = Value::Int(i);
      } else {
        double d = 0;
        if (!absl::SimpleAtod(token.value, &d)) return Fail(line, "bad float literal");
        node->value = Value::Float(d);
      }
      Next();
      return node;
    }
    if (IsOp("(")) {
      Next();
      TupleOptions options;
      options.explicit_parentheses = true;
      PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr node, ParseTuple(options));
      PAGEDLLM_RETURN_IF_ERROR(ExpectOp(")"));
      return node;
    }
    if (IsOp("[") || IsOp("{")) {
      const bool is_list = IsOp("[");
      const std::string close = is_list ? "]" : "}";
      ExprPtr node = MakeExpr(is_list ? ExprKind::kList : ExprKind::kDict, line);
      Next();
      while (!IsOp(close)) {
        if (!node->args.empty()) {
          PAGEDLLM_RETURN_IF_ERROR(ExpectOp(","));
          if (IsOp(close)) break;
        }
        PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr item, ParseExpression(true));
        node->args.push_back(std::move(item));
        if (!is_list) {
          PAGEDLLM_RETURN_IF_ERROR(ExpectOp(":"));
          PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
          node->args.push_back(std::move(value));
        }
      }
      Next();
      return node;
    }
    return Fail(line, absl::StrCat("unexpected '", Describe(token), "'"));
  }

  ExprResult ParsePostfix(ExprPtr node) {
    while (true) {
      if (IsOp(".") || IsOp("[")) {
        PAGEDLLM_ASSIGN_OR_RETURN(node, ParseSubscript(std::move(node)));
      } else if (IsOp("(")) {
        PAGEDLLM_ASSIGN_OR_RETURN(node, ParseCall(std::move(node)));
      } else {
        return node;
      }
    }
  }

  ExprResult ParseFilterExpr(ExprPtr node) {
    while (true) {
      if (IsOp("|")) {
        PAGEDLLM_ASSIGN_OR_RETURN(node, ParseFilters(std::move(node)));
      } else if (IsName("is")) {
        PAGEDLLM_ASSIGN_OR_RETURN(node, ParseTest(std::move(node)));
      } else if (IsOp("(")) {
        PAGEDLLM_ASSIGN_OR_RETURN(node, ParseCall(std::move(node)));
      } else {
        return node;
      }
    }
  }

  ExprResult ParseSubscript(ExprPtr node) {
    const int line = Current().line;
    if (SkipOp(".")) {
      const Token& attribute = Current();
      if (attribute.type == TokenType::kName) {
        ExprPtr e = MakeExpr(ExprKind::kGetattr, line);
        e->name = attribute.value;
        e->args.push_back(std::move(node));
        Next();
        return e;
      }
      if (attribute.type != TokenType::kInteger) return Expected("a name or number after '.'");
      PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr index, ParsePrimary());
      ExprPtr e = MakeExpr(ExprKind::kGetitem, line);
      e->args.push_back(std::move(node));
      e->args.push_back(std::move(index));
      return e;
    }
    Next();  // [
    std::vector<ExprPtr> subscripts;
    while (!IsOp("]")) {
      if (!subscripts.empty()) PAGEDLLM_RETURN_IF_ERROR(ExpectOp(","));
      PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr subscript, ParseSubscribed());
      subscripts.push_back(std::move(subscript));
    }
    PAGEDLLM_RETURN_IF_ERROR(ExpectOp("]"));
    if (subscripts.size() != 1) return Unsupported(line, "tuple subscripts (x[a, b])");
    ExprPtr e = MakeExpr(ExprKind::kGetitem, line);
    e->args.push_back(std::move(node));
    e->args.push_back(std::move(subscripts[0]));
    return e;
  }

  // An index or a slice `start:stop:step` (each part optional).
  ExprResult ParseSubscribed() {
    const int line = Current().line;
    ExprPtr start;
    if (!IsOp(":")) {
      PAGEDLLM_ASSIGN_OR_RETURN(start, ParseExpression(true));
      if (!IsOp(":")) return start;
    }
    Next();  // :
    ExprPtr slice = MakeExpr(ExprKind::kSlice, line);
    slice->args.push_back(std::move(start));
    ExprPtr stop, step;
    if (!IsOp(":") && !IsOp("]") && !IsOp(",")) {
      PAGEDLLM_ASSIGN_OR_RETURN(stop, ParseExpression(true));
    }
    if (SkipOp(":") && !IsOp("]") && !IsOp(",")) {
      PAGEDLLM_ASSIGN_OR_RETURN(step, ParseExpression(true));
    }
    slice->args.push_back(std::move(stop));
    slice->args.push_back(std::move(step));
    return slice;
  }

  // `(args, name=value, ...)` into e->args (after whatever is already there) and e->kwargs.
  absl::Status ParseCallArgs(Expr* e) {
    const int line = Current().line;
    PAGEDLLM_RETURN_IF_ERROR(ExpectOp("("));
    bool require_comma = false;
    const auto ensure = [&](bool ok) {
      return ok ? absl::OkStatus() : Fail(line, "invalid syntax for function call expression");
    };
    while (!IsOp(")")) {
      if (require_comma) {
        PAGEDLLM_RETURN_IF_ERROR(ExpectOp(","));
        if (IsOp(")")) break;
      }
      if (SkipOp("*")) {
        PAGEDLLM_RETURN_IF_ERROR(ensure(e->dyn_args == nullptr && e->dyn_kwargs == nullptr));
        PAGEDLLM_ASSIGN_OR_RETURN(e->dyn_args, ParseExpression(true));
      } else if (SkipOp("**")) {
        PAGEDLLM_RETURN_IF_ERROR(ensure(e->dyn_kwargs == nullptr));
        PAGEDLLM_ASSIGN_OR_RETURN(e->dyn_kwargs, ParseExpression(true));
      } else if (Current().type == TokenType::kName && Look().type == TokenType::kOperator &&
                 Look().value == "=") {
        PAGEDLLM_RETURN_IF_ERROR(ensure(e->dyn_kwargs == nullptr));
        std::string key = Current().value;
        Next();
        Next();
        PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
        e->kwargs.emplace_back(std::move(key), std::move(value));
      } else {
        PAGEDLLM_RETURN_IF_ERROR(
            ensure(e->dyn_args == nullptr && e->dyn_kwargs == nullptr && e->kwargs.empty()));
        PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
        e->args.push_back(std::move(value));
      }
      require_comma = true;
    }
    Next();  // )
    return absl::OkStatus();
  }

  ExprResult ParseCall(ExprPtr callee) {
    const int line = Current().line;
    if (callee->kind == ExprKind::kGetattr && !IsSupportedMethod(callee->name)) {
      return Unsupported(callee->line, absl::StrCat("method '", callee->name, "'"));
    }
    if (callee->kind == ExprKind::kName) {
      if (callee->name == "loop") return Unsupported(line, "recursive loops (loop(...))");
      if ((callee->name == "caller" && macro_depth_ == 0) || callee->name == "super" ||
          callee->name == "self") {
        return Unsupported(line, absl::StrCat("function '", callee->name, "'"));
      }
      if (callee->name != "caller") called_names_.emplace_back(callee->name, line);
    }
    ExprPtr e = MakeExpr(ExprKind::kCall, line);
    e->args.push_back(std::move(callee));
    PAGEDLLM_RETURN_IF_ERROR(ParseCallArgs(e.get()));
    return e;
  }

  // `| f | g(x)` applied to `node` (nullptr in `{% set x | f %}` and `{% filter f %}`, where the
  // first filter comes without its `|`: start_inline).
  ExprResult ParseFilters(ExprPtr node, bool start_inline = false) {
    while (start_inline || SkipOp("|")) {
      start_inline = false;
      const int line = Current().line;
      PAGEDLLM_ASSIGN_OR_RETURN(std::string name, ExpectName());
      if (IsOp(".") || !IsSupportedFilter(name)) {
        return Unsupported(line, absl::StrCat("filter '", name, "'"));
      }
      ExprPtr e = MakeExpr(ExprKind::kFilter, line);
      e->name = std::move(name);
      e->args.push_back(std::move(node));
      if (IsOp("(")) PAGEDLLM_RETURN_IF_ERROR(ParseCallArgs(e.get()));
      PAGEDLLM_RETURN_IF_ERROR(CheckNamedArguments(*e));
      node = std::move(e);
    }
    return node;
  }

  // select / reject / selectattr / rejectattr name a test, map may name a filter: check literal
  // names now, so that an unsupported one fails at start-up too.
  absl::Status CheckNamedArguments(const Expr& filter) {
    size_t index = 0;
    bool is_test = true;
    if (filter.name == "select" || filter.name == "reject") {
      index = 1;
    } else if (filter.name == "selectattr" || filter.name == "rejectattr") {
      index = 2;
    } else if (filter.name == "map") {
      index = 1;
      is_test = false;
    } else {
      return absl::OkStatus();
    }
    if (index >= filter.args.size() || filter.args[index]->kind != ExprKind::kConst ||
        !filter.args[index]->value.is_string()) {
      return absl::OkStatus();
    }
    const std::string& name = filter.args[index]->value.string_value();
    if (is_test ? IsSupportedTest(name) : IsSupportedFilter(name)) return absl::OkStatus();
    return Unsupported(filter.line, absl::StrCat(is_test ? "test '" : "filter '", name, "'"));
  }

  ExprResult ParseTest(ExprPtr node) {
    const int line = Current().line;
    Next();  // is
    const bool negated = SkipName("not");
    PAGEDLLM_ASSIGN_OR_RETURN(std::string name, ExpectName());
    if (IsOp(".") || !IsSupportedTest(name)) {
      return Unsupported(line, absl::StrCat("test '", name, "'"));
    }
    ExprPtr e = MakeExpr(ExprKind::kTest, line);
    e->name = std::move(name);
    e->negated = negated;
    e->args.push_back(std::move(node));
    const TokenType type = Current().type;
    if (IsOp("(")) {
      PAGEDLLM_RETURN_IF_ERROR(ParseCallArgs(e.get()));
    } else if ((type == TokenType::kName || type == TokenType::kString ||
                type == TokenType::kInteger || type == TokenType::kFloat || IsOp("[") ||
                IsOp("{")) &&
               !IsName("else") && !IsName("or") && !IsName("and")) {
      if (IsName("is")) return Fail(line, "cannot chain multiple tests with 'is'");
      PAGEDLLM_ASSIGN_OR_RETURN(ExprPtr argument, ParsePrimary());
      PAGEDLLM_ASSIGN_OR_RETURN(argument, ParsePostfix(std::move(argument)));
      e->args.push_back(std::move(argument));
    }
    return e;
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int loop_depth_ = 0;
  int macro_depth_ = 0;  // inside a macro or call block body, where caller() may be called
  std::set<std::string> macro_names_;
  std::vector<std::pair<std::string, int>> called_names_;  // name(...) call sites
  std::vector<std::string> used_names_;                    // every variable name read
};

}  // namespace

absl::StatusOr<Body> ParseTemplate(std::string_view source) {
  PAGEDLLM_ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(source));
  return Parser(std::move(tokens)).Run();
}

}  // namespace pagedllm::chat_template
