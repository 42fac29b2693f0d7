#include "text/tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "absl/strings/str_cat.h"
#include "text/tokenizer/string_keys.h"
#include "text/tokenizer/utf8.h"

namespace pagedllm::tokenizer {
namespace {

// Per-thread match scratch: match data with one ovector pair and a JIT stack large enough for
// long whitespace runs under lookaheads.
struct MatchScratch {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_jit_stack* jit_stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
  pcre2_match_context* context = [this] {
    pcre2_match_context* ctx = pcre2_match_context_create(nullptr);
    pcre2_jit_stack_assign(ctx, nullptr, jit_stack);
    return ctx;
  }();
  ~MatchScratch() {
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_data_free(data);
  }
};

MatchScratch& Scratch() {
  thread_local MatchScratch scratch;
  return scratch;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Regex>> Regex::Compile(std::string_view pattern,
                                                      std::string_view what) {
  pcre2_compile_context* ctx = pcre2_compile_context_create(nullptr);
  pcre2_set_newline(ctx, PCRE2_NEWLINE_LF);
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &error, &error_offset, ctx);
  pcre2_compile_context_free(ctx);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    return absl::InvalidArgumentError(
        absl::StrCat(Key(what), ": cannot compile the pattern at offset ", error_offset, ": ",
                     reinterpret_cast<const char*>(message)));
  }
  std::unique_ptr<Regex> regex(new Regex(code));
  regex->jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return regex;
}

absl::StatusOr<std::unique_ptr<Regex>> Regex::CompileLiteral(std::string_view literal,
                                                             std::string_view what) {
  // \Q...\E quotes everything but "\E" itself, which is spliced in escaped.
  std::string pattern;
  size_t pos = 0;
  while (true) {
    const size_t e = literal.find("\\E", pos);
    absl::StrAppend(&pattern, "\\Q",
                    Key(literal.substr(pos, e == std::string_view::npos ? e : e - pos)), "\\E");
    if (e == std::string_view::npos) break;
    pattern += "\\\\E";
    pos = e + 2;
  }
  return Compile(pattern, what);
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

absl::Status Regex::FindAll(std::string_view text, std::vector<Match>* matches) const {
  MatchScratch& scratch = Scratch();
  auto* code = static_cast<pcre2_code*>(code_);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  const size_t n = text.size();
  size_t start = 0;
  while (start <= n) {
    const int rc = jit_ ? pcre2_jit_match(code, subject, n, start, 0, scratch.data, scratch.context)
                        : pcre2_match(code, subject, n, start, PCRE2_NO_UTF_CHECK, scratch.data,
                                      scratch.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      return absl::ResourceExhaustedError(
          absl::StrCat("pre-tokenizer pattern failed on a ", n,
                       "-byte text: ", reinterpret_cast<const char*>(message)));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(scratch.data);
    const size_t begin = ovector[0], end = ovector[1];
    if (end > begin) {
      matches->push_back({begin, end});
      start = end;
    } else {
      if (begin >= n) break;
      start = begin + Utf8SequenceLength(static_cast<unsigned char>(text[begin]));
    }
  }
  return absl::OkStatus();
}

}  // namespace pagedllm::tokenizer
