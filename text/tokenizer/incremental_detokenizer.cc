#include "text/tokenizer/incremental_detokenizer.h"

#include "absl/strings/str_cat.h"

namespace pagedllm::tokenizer {

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), stream_(tokenizer.decoder(), skip_special_tokens) {}

absl::StatusOr<std::string> IncrementalDetokenizer::Append(int32_t id) {
  if (id < 0 || id >= tokenizer_.vocab_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("token id ", id, " is outside [0, ", tokenizer_.vocab_size(), ")"));
  }
  std::string text;
  stream_.Append(id, &text);
  return text;
}

std::string IncrementalDetokenizer::Flush() {
  std::string text;
  stream_.Finish(&text);
  return text;
}

}  // namespace pagedllm::tokenizer
