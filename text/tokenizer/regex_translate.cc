// OnigurumaToPcre2: see regex.h.
#include <cctype>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "text/tokenizer/regex.h"
#include "text/tokenizer/string_keys.h"
#include "text/tokenizer/utf8.h"

namespace pagedllm::tokenizer {
namespace {

absl::Status Unsupported(std::string_view what, std::string_view construct, size_t offset) {
  return absl::UnimplementedError(absl::StrCat(Key(what), ": the pattern construct \"",
                                               Key(construct), "\" at offset ", offset,
                                               " is not supported"));
}

bool IsHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

bool IsAsciiLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

}  // namespace

absl::StatusOr<std::string> OnigurumaToPcre2(std::string_view pattern, std::string_view what) {
  if (FindInvalidUtf8(pattern) != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(Key(what), ": the pattern is not valid UTF-8"));
  }
  std::string out;
  bool in_class = false;
  size_t class_start = 0;      // offset in `out` just past "[" or "[^"
  bool ci = false;             // inside (?i:...)
  std::vector<bool> saved_ci;  // ci of the enclosing scope, one per open group
  const size_t n = pattern.size();
  for (size_t i = 0; i < n;) {
    const char c = pattern[i];
    if (c == '\\') {
      if (i + 1 >= n) return Unsupported(what, "\\ at the end", i);
      const char e = pattern[i + 1];
      switch (e) {
        case 's':
          absl::StrAppend(&out, in_class ? "" : "[", kWhiteSpaceClass, in_class ? "" : "]");
          i += 2;
          continue;
        case 'S':
          if (in_class) return Unsupported(what, "\\S inside a character class", i);
          absl::StrAppend(&out, "[^", kWhiteSpaceClass, "]");
          i += 2;
          continue;
        case 'd':
          out += "\\p{Nd}";
          i += 2;
          continue;
        case 'D':
          out += "\\P{Nd}";
          i += 2;
          continue;
        case 'v':
          out += "\\x0B";
          i += 2;
          continue;
        case 'u':
          if (i + 6 > n || !IsHex(pattern[i + 2]) || !IsHex(pattern[i + 3]) ||
              !IsHex(pattern[i + 4]) || !IsHex(pattern[i + 5])) {
            return Unsupported(what, pattern.substr(i, 2), i);
          }
          absl::StrAppend(&out, "\\x{", Key(pattern.substr(i + 2, 4)), "}");
          i += 6;
          continue;
        case 'x':
        case 'p':
        case 'P': {
          // Copied whole, so that (?i:) never folds the letters of a property name.
          size_t end = i + 2;
          if (end < n && pattern[end] == '{') {
            end = pattern.find('}', end);
            if (end == std::string_view::npos) return Unsupported(what, pattern.substr(i, 3), i);
            ++end;
          } else if (e == 'x') {
            while (end < n && end < i + 4 && IsHex(pattern[end])) ++end;
          } else {
            ++end;  // \pL
          }
          out.append(pattern.substr(i, end - i));
          i = end;
          continue;
        }
        case 'A':
        case 'z':
        case 'Z':
        case 'n':
        case 'r':
        case 't':
        case 'f':
        case 'e':
        case 'a':
          out += '\\';
          out += e;
          i += 2;
          continue;
        default:
          if (std::isalnum(static_cast<unsigned char>(e))) {
            return Unsupported(what, pattern.substr(i, 2), i);
          }
          // An escaped literal; non-ASCII ones are copied whole.
          {
            const int len = Utf8SequenceLength(static_cast<unsigned char>(e));
            out += '\\';
            out.append(pattern.substr(i + 1, len));
            i += 1 + len;
          }
          continue;
      }
    }
    if (in_class) {
      if (c == ']' && out.size() > class_start) {
        in_class = false;
        out += ']';
        ++i;
        continue;
      }
      if (c == ']') return Unsupported(what, "[]", i);
      if (c == '[') return Unsupported(what, "[ inside a character class", i);
      if (c == '&' && i + 1 < n && pattern[i + 1] == '&') return Unsupported(what, "&&", i);
      if (ci && IsAsciiLetter(c)) {
        return Unsupported(what, "a letter in a case-insensitive character class", i);
      }
      out += c;
      ++i;
      continue;
    }
    switch (c) {
      case '[':
        in_class = true;
        out += '[';
        ++i;
        if (i < n && pattern[i] == '^') {
          out += '^';
          ++i;
        }
        class_start = out.size();
        continue;
      case '(': {
        const std::string_view rest = pattern.substr(i);
        saved_ci.push_back(ci);
        if (rest.substr(0, 4) == "(?i:") {
          ci = true;
          out += "(?:";
          i += 4;
          continue;
        }
        size_t prefix = 1;
        for (std::string_view group : {"(?:", "(?=", "(?!", "(?<=", "(?<!", "(?>"}) {
          if (rest.substr(0, group.size()) == group) prefix = group.size();
        }
        if (prefix == 1 && rest.size() > 1 && rest[1] == '?') {
          if (rest.substr(0, 3) == "(?<" && rest.size() > 3 && IsAsciiLetter(rest[3])) {
            prefix = 3;  // a named group
          } else {
            return Unsupported(what, rest.substr(0, 3), i);
          }
        }
        out.append(rest.substr(0, prefix));
        i += prefix;
        continue;
      }
      case ')':
        if (saved_ci.empty()) return Unsupported(what, "unbalanced )", i);
        ci = saved_ci.back();
        saved_ci.pop_back();
        out += ')';
        ++i;
        continue;
      default:
        break;
    }
    if (ci && IsAsciiLetter(c)) {
      const char lower = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const char upper = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      absl::StrAppend(&out, "[", std::string(1, lower), std::string(1, upper), "]");
      ++i;
      continue;
    }
    const int len = Utf8SequenceLength(static_cast<unsigned char>(c));
    out.append(pattern.substr(i, len));
    i += len;
  }
  if (in_class) return Unsupported(what, "unterminated [", n);
  if (!saved_ci.empty()) return Unsupported(what, "unbalanced (", n);
  return out;
}

}  // namespace pagedllm::tokenizer
