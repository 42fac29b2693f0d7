// One streamed choice's text: turns each chunk's new token ids into exactly the new text
// (incremental detokenization: never a broken UTF-8 sequence; all chunks concatenated equal
// decoding the whole output), and ends the choice at the first stop string, which may span
// chunks. Text that could still be the start of a stop string is held back until it cannot be.
// Runs on the frontend thread of the call, so the engine loop never detokenizes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "text/tokenizer/incremental_detokenizer.h"
#include "text/tokenizer/stop_string_matcher.h"
#include "text/tokenizer/tokenizer.h"

namespace pagedllm::coordinator {

class TextStream {
 public:
  // `tokenizer` outlives the stream.
  TextStream(const tokenizer::Tokenizer& tokenizer, bool skip_special_tokens,
             std::vector<std::string> stop_strings, bool include_stop_string);

  struct Update {
    std::string text;       // new text to send
    size_t num_tokens = 0;  // how many of the given ids belong to the output (all unless stopped)
    bool stopped = false;   // a stop string ended the choice with the num_tokens-th id
  };
  // The next ids of the output. After `stopped`, the choice is over: call nothing more.
  Update Append(absl::Span<const int32_t> token_ids);
  // The held-back text, when the choice ends for another reason (length, EOS, stop token).
  // `stopped` when that text completes a stop string (num_tokens is 0).
  Update Finish();

 private:
  tokenizer::IncrementalDetokenizer detokenizer_;
  tokenizer::StopStringMatcher matcher_;
  bool has_stop_strings_;
};

}  // namespace pagedllm::coordinator
