// Python's str semantics on UTF-8 strings, as chat templates see them through Jinja: strings are
// sequences of code points (len, indexing and slicing count code points), whitespace is
// str.isspace(), case mapping is str.upper() / lower() / title() / capitalize(). Inputs are valid
// UTF-8 (JSON text and template literals are); a stray byte decodes as itself.
//
// Case mapping uses Unicode's simple mappings (utf8proc) plus the few full mappings that change
// length (ß -> SS, İ -> i̇); the other rare SpecialCasing entries (ligatures, some Greek) map
// one code point to one as utf8proc says, where Python may give several.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/string_view.h"

namespace pagedllm::chat_template {

// Debian's Abseil has its own absl::string_view, not std::string_view: this hands ours to it.
inline absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::u32string DecodeUtf8(std::string_view text);
// The code point that starts at text[*pos]; advances *pos past it.
char32_t DecodeUtf8At(std::string_view text, size_t* pos);
std::string EncodeUtf8(std::u32string_view code_points);
void AppendUtf8(char32_t code_point, std::string* out);
size_t CodePointCount(std::string_view text);

// str.isspace() for one code point; also what Python's re `\s` matches in a str pattern.
bool IsPySpace(char32_t c);
// str.isprintable() for one code point (repr() escapes the others).
bool IsPyPrintable(char32_t c);
// The line boundaries of str.splitlines().
bool IsPyLineBreak(char32_t c);

// str.strip / lstrip / rstrip: with `chars` absent, whitespace.
std::string PyStrip(std::string_view text, const std::string* chars, bool left, bool right);
std::string PyUpper(std::string_view text);
std::string PyLower(std::string_view text);
std::string PyTitle(std::string_view text);       // str.title()
std::string PyCapitalize(std::string_view text);  // str.capitalize()
// str.split(sep, maxsplit) and str.rsplit; sep == nullptr splits on whitespace runs.
std::vector<std::string> PySplit(std::string_view text, const std::string* sep, int64_t maxsplit,
                                 bool from_right);
std::vector<std::string> PySplitLines(std::string_view text, bool keepends);
std::string PyReplace(std::string_view text, std::string_view old_text, std::string_view new_text,
                      int64_t count);
// Number of non-overlapping occurrences (str.count); an empty needle counts len + 1.
int64_t PyCount(std::string_view text, std::string_view needle);

// The Python literal repr() writes for a str: quotes chosen as Python does, escapes for
// backslash, quotes, control and non-printable characters.
std::string PyStringRepr(std::string_view text);

}  // namespace pagedllm::chat_template
