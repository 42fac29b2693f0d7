#include "text/chat_template/py_string.h"

#include <utf8proc.h>

#include <algorithm>

#include "absl/strings/str_format.h"

namespace pagedllm::chat_template {
namespace {

// Decodes the code point at text[*pos] and advances *pos; a stray byte decodes as itself.
char32_t NextCodePoint(std::string_view text, size_t* pos) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(*pos);
  int length = 1;
  char32_t c = lead;
  if (lead >= 0xF0) {
    length = 4;
    c = lead & 0x07;
  } else if (lead >= 0xE0) {
    length = 3;
    c = lead & 0x0F;
  } else if (lead >= 0xC0) {
    length = 2;
    c = lead & 0x1F;
  }
  if (length == 1 || *pos + length > text.size()) {
    ++*pos;
    return lead;
  }
  for (int i = 1; i < length; ++i) c = (c << 6) | (byte(*pos + i) & 0x3F);
  *pos += length;
  return c;
}

utf8proc_category_t Category(char32_t c) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(c));
}

bool IsCased(char32_t c) {
  const utf8proc_category_t category = Category(c);
  return category == UTF8PROC_CATEGORY_LU || category == UTF8PROC_CATEGORY_LL ||
         category == UTF8PROC_CATEGORY_LT;
}

void AppendUpper(char32_t c, std::string* out) {
  if (c == U'\u00DF') {  // ß
    out->append("SS");
    return;
  }
  AppendUtf8(static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c))), out);
}

bool IsCaseIgnorable(char32_t c) {
  switch (Category(c)) {
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_SK:
      return true;
    default:
      return c == '\'' || c == '.' || c == ':' || c == 0xB7 || c == 0x387 || c == 0x2018 ||
             c == 0x2019 || c == 0x2024 || c == 0x2027;
  }
}

// Σ lowercases to final ς after a cased letter when no cased letter follows (Python's
// handle_capital_sigma), else to σ.
bool IsFinalSigma(const std::u32string& cps, size_t i) {
  size_t j = i;
  while (j > 0 && IsCaseIgnorable(cps[j - 1])) --j;
  if (j == 0 || !IsCased(cps[j - 1])) return false;
  size_t k = i + 1;
  while (k < cps.size() && IsCaseIgnorable(cps[k])) ++k;
  return k == cps.size() || !IsCased(cps[k]);
}

// The lowercase of cps[i] in its context.
void AppendLower(const std::u32string& cps, size_t i, std::string* out) {
  const char32_t c = cps[i];
  if (c == U'\u0130') {  // İ -> i + combining dot above
    out->append("i\xCC\x87");
    return;
  }
  if (c == U'\u03A3') {
    AppendUtf8(IsFinalSigma(cps, i) ? U'\u03C2' : U'\u03C3', out);
    return;
  }
  AppendUtf8(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))), out);
}

void AppendTitle(char32_t c, std::string* out) {
  if (c == U'\u00DF') {  // ß -> Ss
    out->append("Ss");
    return;
  }
  AppendUtf8(static_cast<char32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(c))), out);
}

bool InChars(char32_t c, const std::u32string& chars) {
  return chars.find(c) != std::u32string::npos;
}

}  // namespace

char32_t DecodeUtf8At(std::string_view text, size_t* pos) { return NextCodePoint(text, pos); }

std::u32string DecodeUtf8(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) out.push_back(NextCodePoint(text, &pos));
  return out;
}

std::string EncodeUtf8(std::u32string_view code_points) {
  std::string out;
  out.reserve(code_points.size());
  for (char32_t c : code_points) AppendUtf8(c, &out);
  return out;
}

void AppendUtf8(char32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

size_t CodePointCount(std::string_view text) {
  size_t count = 0;
  for (char ch : text) count += (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
  return count;
}

bool IsPySpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

bool IsPyPrintable(char32_t c) {
  if (c == ' ') return true;
  switch (Category(c)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_ZS:
      return false;
    default:
      return true;
  }
}

bool IsPyLineBreak(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
         c == 0x85 || c == 0x2028 || c == 0x2029;
}

std::string PyStrip(std::string_view text, const std::string* chars, bool left, bool right) {
  const std::u32string cps = DecodeUtf8(text);
  const std::u32string strip_set = chars != nullptr ? DecodeUtf8(*chars) : std::u32string();
  const auto strips = [&](char32_t c) {
    return chars != nullptr ? InChars(c, strip_set) : IsPySpace(c);
  };
  size_t begin = 0, end = cps.size();
  if (left) {
    while (begin < end && strips(cps[begin])) ++begin;
  }
  if (right) {
    while (end > begin && strips(cps[end - 1])) --end;
  }
  return EncodeUtf8(std::u32string_view(cps).substr(begin, end - begin));
}

std::string PyUpper(std::string_view text) {
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) AppendUpper(NextCodePoint(text, &pos), &out);
  return out;
}

std::string PyLower(std::string_view text) {
  const std::u32string cps = DecodeUtf8(text);
  std::string out;
  for (size_t i = 0; i < cps.size(); ++i) AppendLower(cps, i, &out);
  return out;
}

std::string PyTitle(std::string_view text) {
  const std::u32string cps = DecodeUtf8(text);
  std::string out;
  bool previous_is_cased = false;
  for (size_t i = 0; i < cps.size(); ++i) {
    if (previous_is_cased) {
      AppendLower(cps, i, &out);
    } else {
      AppendTitle(cps[i], &out);
    }
    previous_is_cased = IsCased(cps[i]);
  }
  return out;
}

std::string PyCapitalize(std::string_view text) {
  const std::u32string cps = DecodeUtf8(text);
  std::string out;
  for (size_t i = 0; i < cps.size(); ++i) {
    if (i == 0) {
      AppendTitle(cps[i], &out);
    } else {
      AppendLower(cps, i, &out);
    }
  }
  return out;
}

std::vector<std::string> PySplit(std::string_view text, const std::string* sep, int64_t maxsplit,
                                 bool from_right) {
  std::vector<std::string> parts;
  if (maxsplit < 0) maxsplit = INT64_MAX;
  if (sep != nullptr) {
    // Exact separator; sep is never empty here (the caller refuses that).
    if (!from_right) {
      size_t start = 0;
      while (static_cast<int64_t>(parts.size()) < maxsplit) {
        const size_t found = text.find(*sep, start);
        if (found == std::string_view::npos) break;
        parts.emplace_back(text.substr(start, found - start));
        start = found + sep->size();
      }
      parts.emplace_back(text.substr(start));
      return parts;
    }
    size_t end = text.size();
    while (static_cast<int64_t>(parts.size()) < maxsplit && end >= sep->size()) {
      const size_t found = text.rfind(*sep, end - sep->size());
      if (found == std::string_view::npos) break;
      parts.emplace_back(text.substr(found + sep->size(), end - found - sep->size()));
      end = found;
    }
    parts.emplace_back(text.substr(0, end));
    std::reverse(parts.begin(), parts.end());
    return parts;
  }
  // Whitespace runs; the remainder after maxsplit splits keeps its inner and far-end whitespace.
  const std::u32string cps = DecodeUtf8(text);
  if (!from_right) {
    size_t i = 0;
    while (true) {
      while (i < cps.size() && IsPySpace(cps[i])) ++i;
      if (i == cps.size()) break;
      if (static_cast<int64_t>(parts.size()) == maxsplit) {
        parts.push_back(EncodeUtf8(std::u32string_view(cps).substr(i)));
        break;
      }
      const size_t start = i;
      while (i < cps.size() && !IsPySpace(cps[i])) ++i;
      parts.push_back(EncodeUtf8(std::u32string_view(cps).substr(start, i - start)));
    }
    return parts;
  }
  size_t i = cps.size();
  while (true) {
    while (i > 0 && IsPySpace(cps[i - 1])) --i;
    if (i == 0) break;
    if (static_cast<int64_t>(parts.size()) == maxsplit) {
      parts.push_back(EncodeUtf8(std::u32string_view(cps).substr(0, i)));
      break;
    }
    const size_t end = i;
    while (i > 0 && !IsPySpace(cps[i - 1])) --i;
    parts.push_back(EncodeUtf8(std::u32string_view(cps).substr(i, end - i)));
  }
  std::reverse(parts.begin(), parts.end());
  return parts;
}

std::vector<std::string> PySplitLines(std::string_view text, bool keepends) {
  std::vector<std::string> lines;
  const std::u32string cps = DecodeUtf8(text);
  size_t start = 0, i = 0;
  while (i < cps.size()) {
    if (!IsPyLineBreak(cps[i])) {
      ++i;
      continue;
    }
    size_t eol = i + 1;
    if (cps[i] == '\r' && eol < cps.size() && cps[eol] == '\n') ++eol;
    const size_t end = keepends ? eol : i;
    lines.push_back(EncodeUtf8(std::u32string_view(cps).substr(start, end - start)));
    start = i = eol;
  }
  if (start < cps.size()) lines.push_back(EncodeUtf8(std::u32string_view(cps).substr(start)));
  return lines;
}

std::string PyReplace(std::string_view text, std::string_view old_text, std::string_view new_text,
                      int64_t count) {
  if (count < 0) count = INT64_MAX;
  std::string out;
  if (old_text.empty()) {
    // Python inserts `new_text` before every code point and at the end.
    size_t pos = 0;
    int64_t done = 0;
    while (pos < text.size() && done < count) {
      out.append(new_text);
      ++done;
      const size_t start = pos;
      NextCodePoint(text, &pos);
      out.append(text.substr(start, pos - start));
    }
    out.append(text.substr(pos));
    if (pos == text.size() && done < count) out.append(new_text);
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (done < count) {
    const size_t found = text.find(old_text, start);
    if (found == std::string_view::npos) break;
    out.append(text.substr(start, found - start));
    out.append(new_text);
    start = found + old_text.size();
    ++done;
  }
  out.append(text.substr(start));
  return out;
}

int64_t PyCount(std::string_view text, std::string_view needle) {
  if (needle.empty()) return static_cast<int64_t>(CodePointCount(text)) + 1;
  int64_t count = 0;
  for (size_t pos = text.find(needle); pos != std::string_view::npos;
       pos = text.find(needle, pos + needle.size())) {
    ++count;
  }
  return count;
}

std::string PyStringRepr(std::string_view text) {
  const bool has_single = text.find('\'') != std::string_view::npos;
  const bool has_double = text.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t start = pos;
    const char32_t c = NextCodePoint(text, &pos);
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\t') {
      out.append("\\t");
    } else if (c == '\n') {
      out.append("\\n");
    } else if (c == '\r') {
      out.append("\\r");
    } else if (c < 0x20 || c == 0x7F) {
      out.append(absl::StrFormat("\\x%02x", static_cast<unsigned>(c)));
    } else if (c < 0x7F || IsPyPrintable(c)) {
      out.append(text.substr(start, pos - start));
    } else if (c <= 0xFF) {
      out.append(absl::StrFormat("\\x%02x", static_cast<unsigned>(c)));
    } else if (c <= 0xFFFF) {
      out.append(absl::StrFormat("\\u%04x", static_cast<unsigned>(c)));
    } else {
      out.append(absl::StrFormat("\\U%08x", static_cast<unsigned>(c)));
    }
  }
  out.push_back(quote);
  return out;
}

}  // namespace pagedllm::chat_template
