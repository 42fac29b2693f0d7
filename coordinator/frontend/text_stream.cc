#include "coordinator/frontend/text_stream.h"

#include <utility>

namespace pagedllm::coordinator {

TextStream::TextStream(const tokenizer::Tokenizer& tokenizer, bool skip_special_tokens,
                       std::vector<std::string> stop_strings, bool include_stop_string)
    : detokenizer_(tokenizer, skip_special_tokens),
      matcher_(stop_strings, include_stop_string),
      has_stop_strings_(!stop_strings.empty()) {}

TextStream::Update TextStream::Append(absl::Span<const int32_t> token_ids) {
  Update update;
  for (int32_t id : token_ids) {
    ++update.num_tokens;
    // An id the tokenizer does not know (a model vocabulary padded past the tokenizer's) adds
    // no text; its id is still streamed.
    absl::StatusOr<std::string> piece = detokenizer_.Append(id);
    if (!piece.ok() || piece->empty()) continue;
    if (!has_stop_strings_) {
      update.text += *piece;
      continue;
    }
    tokenizer::StopStringMatcher::Result matched = matcher_.Append(*piece);
    update.text += matched.text;
    if (matched.stopped) {
      update.stopped = true;
      break;
    }
  }
  return update;
}

TextStream::Update TextStream::Finish() {
  Update update;
  update.text = detokenizer_.Flush();
  if (!has_stop_strings_) return update;
  // The flushed bytes may still complete a stop string (e.g. a replacement character).
  tokenizer::StopStringMatcher::Result matched = matcher_.Append(update.text);
  update.text = std::move(matched.text);
  update.stopped = matched.stopped;
  if (!update.stopped) update.text += matcher_.Flush();
  return update;
}

}  // namespace pagedllm::coordinator
