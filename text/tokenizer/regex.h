// A compiled PCRE2 pattern (UTF + Unicode properties, JIT-compiled once at load) and the
// translation of tokenizer.json's Oniguruma patterns into PCRE2 syntax.
// Thread safe: Regex is immutable after Compile; match scratch space is per thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace pagedllm::tokenizer {

class Regex {
 public:
  // `pattern` is PCRE2 syntax; compiled with UTF, UCP and MULTILINE (^ and $ are line anchors,
  // as in Oniguruma), "\n" as the only newline. `what` names the pattern in error messages.
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(std::string_view pattern,
                                                        std::string_view what);
  // A pattern that matches `literal` exactly.
  static absl::StatusOr<std::unique_ptr<Regex>> CompileLiteral(std::string_view literal,
                                                               std::string_view what);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  struct Match {
    size_t begin;
    size_t end;
  };
  // Appends the non-overlapping, non-empty matches in `text` (valid UTF-8), left to right.
  // Fails only when PCRE2 runs out of its match limits.
  absl::Status FindAll(std::string_view text, std::vector<Match>* matches) const;

 private:
  explicit Regex(void* code) : code_(code) {}
  void* code_;  // pcre2_code_8*
  bool jit_ = false;
};

// Translates an Oniguruma pattern, as HF tokenizer.json files write them, into PCRE2 syntax with
// the meaning @huggingface/tokenizers gives it: \s and \S are Unicode White_Space, (?i:...) folds
// ASCII letters only, \uXXXX becomes \x{XXXX}, \v is the vertical tab. Constructs whose meaning
// differs between the engines (\w, \b, POSIX classes, backreferences, nested classes, ...) are
// UNIMPLEMENTED, naming `what` and the construct.
absl::StatusOr<std::string> OnigurumaToPcre2(std::string_view pattern, std::string_view what);

// Character-class body (no brackets) of Unicode White_Space: what tokenizer.json patterns (and
// the ByteLevel pre-tokenizer's built-in one) mean by \s.
inline constexpr char kWhiteSpaceClass[] =
    "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
    "\\x{202F}\\x{205F}\\x{3000}";

}  // namespace pagedllm::tokenizer
