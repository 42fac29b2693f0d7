#include "text/chat_template/lexer.h"

#include <algorithm>
#include <cctype>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status.h"
#include "text/chat_template/py_string.h"

namespace pagedllm::chat_template {
namespace {

// "\r\n" and "\r" become "\n"; one trailing newline is dropped (keep_trailing_newline=False).
std::string NormalizeNewlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsNameStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Python's unicode-escape decoding of a string literal's body, after Jinja turned its non-ASCII
// characters into backslash escapes (so "\é" keeps its backslash and reads as "\xe9").
absl::StatusOr<std::string> DecodeStringLiteral(std::string_view body, int line) {
  std::string out;
  size_t i = 0;
  const auto fail = [&](std::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", line, ": ", Sv(what), " in string literal"));
  };
  const auto hex = [&](size_t start, int digits, uint32_t* value) {
    if (start + digits > body.size()) return false;
    *value = 0;
    for (int k = 0; k < digits; ++k) {
      const char c = body[start + k];
      if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
      *value = *value * 16 + (IsDigit(c) ? c - '0' : (std::tolower(c) - 'a' + 10));
    }
    return true;
  };
  while (i < body.size()) {
    if (body[i] != '\\') {
      out.push_back(body[i++]);
      continue;
    }
    if (i + 1 >= body.size()) return fail("\\ at end of string");
    const char c = body[i + 1];
    i += 2;
    switch (c) {
      case '\n':
        break;
      case '\\':
        out.push_back('\\');
        break;
      case '\'':
        out.push_back('\'');
        break;
      case '"':
        out.push_back('"');
        break;
      case 'a':
        out.push_back('\a');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'v':
        out.push_back('\v');
        break;
      case 'x':
      case 'u':
      case 'U': {
        const int digits = c == 'x' ? 2 : (c == 'u' ? 4 : 8);
        uint32_t value = 0;
        if (!hex(i, digits, &value)) {
          return fail(absl::StrCat("truncated \\", std::string(1, c), " escape"));
        }
        if (value > 0x10FFFF) return fail("illegal Unicode character");
        AppendUtf8(static_cast<char32_t>(value), &out);
        i += digits;
        break;
      }
      case 'N':
        return fail("\\N{...} escape (unsupported)");
      default:
        if (c >= '0' && c <= '7') {
          uint32_t value = c - '0';
          for (int k = 0; k < 2 && i < body.size() && body[i] >= '0' && body[i] <= '7'; ++k) {
            value = value * 8 + (body[i++] - '0');
          }
          AppendUtf8(static_cast<char32_t>(value), &out);
        } else if (static_cast<unsigned char>(c) >= 0x80) {
          // Jinja escaped this character before decoding; the backslash escapes the escape.
          size_t start = i - 1;
          const char32_t cp = DecodeUtf8At(body, &start);
          i = start;
          out.push_back('\\');
          out.append(cp <= 0xFF     ? absl::StrFormat("x%02x", static_cast<unsigned>(cp))
                     : cp <= 0xFFFF ? absl::StrFormat("u%04x", static_cast<unsigned>(cp))
                                    : absl::StrFormat("U%08x", static_cast<unsigned>(cp)));
        } else {
          out.push_back('\\');
          out.push_back(c);
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string source) : src_(std::move(source)) {}

  absl::StatusOr<std::vector<Token>> Run() {
    while (pos_ < src_.size()) {
      const size_t tag = FindTagStart(pos_);
      if (tag == std::string::npos) {
        EmitData(src_.size(), src_.substr(pos_));
        break;
      }
      const char kind = src_[tag + 1];
      const char sign = tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+')
                            ? src_[tag + 2]
                            : '\0';
      std::string text = src_.substr(pos_, tag - pos_);
      if (sign == '-') {
        text = PyStrip(text, nullptr, false, true);
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: drop the whitespace that alone precedes the tag on its line.
        const size_t line_start = text.rfind('\n') + 1;  // npos + 1 == 0
        if ((line_start > 0 || line_starting_) && line_start < text.size() &&
            AllSpace(std::string_view(text).substr(line_start))) {
          text.resize(line_start);
        }
      }
      EmitData(tag, std::move(text));
      const size_t raw_end = MatchRawTag(tag, "raw", /*trim=*/false);
      if (kind == '%' && raw_end != std::string::npos) {
        Advance(raw_end);
        PAGEDLLM_RETURN_IF_ERROR(LexRaw());
        continue;
      }
      Advance(tag + 2 + (sign != '\0' ? 1 : 0));
      line_starting_ = false;
      if (kind == '#') {
        PAGEDLLM_RETURN_IF_ERROR(LexComment());
      } else {
        PAGEDLLM_RETURN_IF_ERROR(LexTag(kind == '{'));
      }
    }
    tokens_.push_back(Token{TokenType::kEnd, "", line_});
    return std::move(tokens_);
  }

 private:
  absl::Status Error(std::string_view message) const {
    return absl::InvalidArgumentError(absl::StrCat("line ", line_, ": ", Sv(message)));
  }

  static bool AllSpace(std::string_view text) {
    size_t pos = 0;
    while (pos < text.size()) {
      if (!IsPySpace(DecodeUtf8At(text, &pos))) return false;
    }
    return true;
  }

  // The next "{{", "{%" or "{#" at or after `from`.
  size_t FindTagStart(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) {
        return i;
      }
    }
    return std::string::npos;
  }

  // Moves to `to`, counting lines.
  void Advance(size_t to) {
    for (size_t i = pos_; i < to; ++i) line_ += src_[i] == '\n';
    pos_ = to;
  }

  // Data up to `end` (source offset), as `text` after whitespace control.
  void EmitData(size_t end, std::string text) {
    const int line = line_;
    Advance(end);
    if (!text.empty()) tokens_.push_back(Token{TokenType::kData, std::move(text), line});
  }

  size_t SkipSpace(size_t pos) const {
    while (pos < src_.size()) {
      size_t next = pos;
      if (!IsPySpace(DecodeUtf8At(src_, &next))) break;
      pos = next;
    }
    return pos;
  }

  // Matches `{%[-+]? \s* word \s* (-%}\s* | %}[\n]?)` at `pos` (the trailing newline only with
  // `trim`, `+%}` too); returns the end or npos.
  size_t MatchRawTag(size_t pos, std::string_view word, bool trim) const {
    if (src_.compare(pos, 2, "{%") != 0) return std::string::npos;
    pos += 2;
    if (pos < src_.size() && (src_[pos] == '-' || src_[pos] == '+')) ++pos;
    pos = SkipSpace(pos);
    if (src_.compare(pos, word.size(), word) != 0) return std::string::npos;
    pos = SkipSpace(pos + word.size());
    if (trim && src_.compare(pos, 3, "+%}") == 0) return pos + 3;
    if (src_.compare(pos, 3, "-%}") == 0) return SkipSpace(pos + 3);
    if (src_.compare(pos, 2, "%}") == 0) {
      pos += 2;
      if (trim && pos < src_.size() && src_[pos] == '\n') ++pos;
      return pos;
    }
    return std::string::npos;
  }

  // After `{% raw %}`: data up to `{% endraw %}`, which strips like any block tag.
  absl::Status LexRaw() {
    line_starting_ = pos_ > 0 && src_[pos_ - 1] == '\n';
    for (size_t tag = src_.find("{%", pos_); tag != std::string::npos;
         tag = src_.find("{%", tag + 1)) {
      const size_t end = MatchRawTag(tag, "endraw", /*trim=*/true);
      if (end == std::string::npos) continue;
      const char sign = src_[tag + 2];
      std::string text = src_.substr(pos_, tag - pos_);
      if (sign == '-') {
        text = PyStrip(text, nullptr, false, true);
      } else if (sign != '+') {
        const size_t line_start = text.rfind('\n') + 1;
        if ((line_start > 0 || line_starting_) && line_start < text.size() &&
            AllSpace(std::string_view(text).substr(line_start))) {
          text.resize(line_start);
        }
      }
      EmitData(tag, std::move(text));
      Advance(end);
      line_starting_ = src_[end - 1] == '\n';
      return absl::OkStatus();
    }
    return Error("missing end of raw directive");
  }

  absl::Status LexComment() {
    const size_t close = src_.find("#}", pos_);
    if (close == std::string::npos) return Error("missing end of comment tag");
    size_t end = close + 2;
    const char before = close > pos_ ? src_[close - 1] : '\0';
    if (before == '-') {
      end = SkipSpace(end);
    } else if (before != '+' && end < src_.size() && src_[end] == '\n') {
      ++end;  // trim_blocks
    }
    Advance(end);
    line_starting_ = src_[end - 1] == '\n';
    return absl::OkStatus();
  }

  // Inside `{{ ... }}` or `{% ... %}`, from after the opening delimiter.
  absl::Status LexTag(bool is_variable) {
    tokens_.push_back(
        Token{is_variable ? TokenType::kVariableBegin : TokenType::kBlockBegin, "", line_});
    std::vector<char> balancing;
    while (true) {
      if (pos_ >= src_.size()) {
        return Error(is_variable ? "unexpected end of template, expected '}}'"
                                 : "unexpected end of template, expected '%}'");
      }
      if (balancing.empty()) {
        size_t end = std::string::npos;
        if (is_variable) {
          if (src_.compare(pos_, 3, "-}}") == 0) {
            end = SkipSpace(pos_ + 3);
          } else if (src_.compare(pos_, 2, "}}") == 0) {
            end = pos_ + 2;
          }
        } else if (src_.compare(pos_, 3, "+%}") == 0) {
          end = pos_ + 3;
        } else if (src_.compare(pos_, 3, "-%}") == 0) {
          end = SkipSpace(pos_ + 3);
        } else if (src_.compare(pos_, 2, "%}") == 0) {
          end = pos_ + 2;
          if (end < src_.size() && src_[end] == '\n') ++end;  // trim_blocks
        }
        if (end != std::string::npos) {
          tokens_.push_back(
              Token{is_variable ? TokenType::kVariableEnd : TokenType::kBlockEnd, "", line_});
          Advance(end);
          line_starting_ = src_[end - 1] == '\n';
          return absl::OkStatus();
        }
      }
      const size_t after_space = SkipSpace(pos_);
      if (after_space != pos_) {
        Advance(after_space);
        continue;
      }
      const char c = src_[pos_];
      if (IsDigit(c)) {
        PAGEDLLM_RETURN_IF_ERROR(LexNumber());
      } else if (IsNameStart(c)) {
        size_t end = pos_ + 1;
        while (end < src_.size() && IsNameChar(src_[end])) ++end;
        tokens_.push_back(Token{TokenType::kName, src_.substr(pos_, end - pos_), line_});
        Advance(end);
      } else if (c == '\'' || c == '"') {
        PAGEDLLM_RETURN_IF_ERROR(LexString(c));
      } else {
        PAGEDLLM_RETURN_IF_ERROR(LexOperator(&balancing));
      }
    }
  }

  // Digits with single underscores between them, from `pos`; returns the end.
  size_t ScanDigits(size_t pos, bool (*is_digit)(char)) const {
    if (pos >= src_.size() || !is_digit(src_[pos])) return pos;
    size_t end = pos + 1;
    while (end < src_.size()) {
      if (is_digit(src_[end])) {
        ++end;
      } else if (src_[end] == '_' && end + 1 < src_.size() && is_digit(src_[end + 1])) {
        end += 2;
      } else {
        break;
      }
    }
    return end;
  }

  absl::Status LexNumber() {
    const auto strip = [](std::string s) {
      s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
      return s;
    };
    const bool after_dot = pos_ > 0 && src_[pos_ - 1] == '.';
    const size_t int_end = ScanDigits(pos_, IsDigit);
    if (!after_dot) {
      size_t end = int_end;
      bool is_float = false;
      if (end + 1 < src_.size() && src_[end] == '.' && IsDigit(src_[end + 1])) {
        end = ScanDigits(end + 1, IsDigit);
        is_float = true;
      }
      if (end < src_.size() && (src_[end] == 'e' || src_[end] == 'E')) {
        size_t exp = end + 1;
        if (exp < src_.size() && (src_[exp] == '+' || src_[exp] == '-')) ++exp;
        const size_t exp_end = ScanDigits(exp, IsDigit);
        if (exp_end > exp) {
          end = exp_end;
          is_float = true;
        }
      }
      if (is_float) {
        tokens_.push_back(Token{TokenType::kFloat, strip(src_.substr(pos_, end - pos_)), line_});
        Advance(end);
        return absl::OkStatus();
      }
    }
    // Integers: 0b / 0o / 0x prefixes, or decimal without leading zeros.
    int base = 10;
    size_t digits_begin = pos_, end = int_end;
    if (src_[pos_] == '0' && pos_ + 1 < src_.size()) {
      const char prefix = static_cast<char>(std::tolower(src_[pos_ + 1]));
      bool (*is_digit)(char) = nullptr;
      if (prefix == 'b') {
        base = 2;
        is_digit = [](char ch) { return ch == '0' || ch == '1'; };
      } else if (prefix == 'o') {
        base = 8;
        is_digit = [](char ch) { return ch >= '0' && ch <= '7'; };
      } else if (prefix == 'x') {
        base = 16;
        is_digit = [](char ch) { return std::isxdigit(static_cast<unsigned char>(ch)) != 0; };
      }
      if (is_digit != nullptr) {
        size_t start = pos_ + 2;
        if (start < src_.size() && src_[start] == '_') ++start;
        const size_t digits_end = ScanDigits(start, is_digit);
        if (digits_end > start) {
          digits_begin = start;
          end = digits_end;
        } else {
          base = 10;
        }
      }
      if (base == 10) {
        // "0", "00", "0_0": only zeros may follow a leading zero.
        end = pos_ + 1;
        while (end < src_.size() &&
               (src_[end] == '0' ||
                (src_[end] == '_' && end + 1 < src_.size() && src_[end + 1] == '0'))) {
          end += src_[end] == '_' ? 2 : 1;
        }
      }
    }
    const std::string digits = strip(src_.substr(digits_begin, end - digits_begin));
    uint64_t value = 0;
    for (char d : digits) {
      const int v = IsDigit(d) ? d - '0' : std::tolower(d) - 'a' + 10;
      if (value > (UINT64_MAX - v) / base) return Error("integer literal too large");
      value = value * base + v;
    }
    if (value > static_cast<uint64_t>(INT64_MAX)) return Error("integer literal too large");
    tokens_.push_back(Token{TokenType::kInteger, absl::StrCat(value), line_});
    Advance(end);
    return absl::OkStatus();
  }

  absl::Status LexString(char quote) {
    size_t i = pos_ + 1;
    while (i < src_.size() && src_[i] != quote) {
      if (src_[i] == '\\') ++i;
      ++i;
    }
    if (i >= src_.size()) return Error("unterminated string literal");
    const int line = line_;
    PAGEDLLM_ASSIGN_OR_RETURN(
        std::string value,
        DecodeStringLiteral(std::string_view(src_).substr(pos_ + 1, i - pos_ - 1), line));
    tokens_.push_back(Token{TokenType::kString, std::move(value), line});
    Advance(i + 1);
    return absl::OkStatus();
  }

  absl::Status LexOperator(std::vector<char>* balancing) {
    static constexpr std::string_view kTwoChar[] = {"//", "**", "==", "!=", ">=", "<="};
    static constexpr std::string_view kOneChar = "+-/*%~[](){}><=.:|,;";
    std::string op;
    for (std::string_view two : kTwoChar) {
      if (src_.compare(pos_, 2, two) == 0) op = std::string(two);
    }
    if (op.empty()) {
      if (kOneChar.find(src_[pos_]) == std::string_view::npos) {
        size_t end = pos_;
        const char32_t c = DecodeUtf8At(src_, &end);
        std::string shown;
        AppendUtf8(c, &shown);
        return Error(absl::StrCat("unexpected char '", shown, "'"));
      }
      op = std::string(1, src_[pos_]);
    }
    const char c = op[0];
    if (op.size() == 1 && (c == '(' || c == '[' || c == '{')) {
      balancing->push_back(c == '(' ? ')' : (c == '[' ? ']' : '}'));
    } else if (op.size() == 1 && (c == ')' || c == ']' || c == '}')) {
      if (balancing->empty()) return Error(absl::StrCat("unexpected '", op, "'"));
      const char expected = balancing->back();
      balancing->pop_back();
      if (expected != c) {
        return Error(
            absl::StrCat("unexpected '", op, "', expected '", std::string(1, expected), "'"));
      }
    }
    tokens_.push_back(Token{TokenType::kOperator, op, line_});
    Advance(pos_ + op.size());
    return absl::OkStatus();
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;  // the last match ended a line (or nothing was matched yet)
  std::vector<Token> tokens_;
};

}  // namespace

absl::StatusOr<std::vector<Token>> Tokenize(std::string_view source) {
  return Lexer(NormalizeNewlines(source)).Run();
}

}  // namespace pagedllm::chat_template
