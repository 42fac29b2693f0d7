// Streaming detokenization of one output sequence: Append(id) returns the new text that id
// completes. Concatenating every Append() result and then Flush() gives exactly
// tokenizer.Decode(all ids, skip_special_tokens); no result ends inside a UTF-8 sequence (bytes
// are held until their character is complete). Each Append costs O(length of its token), however
// long the sequence is. Not thread safe; one per sequence; the tokenizer outlives it.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "text/tokenizer/decode_stream.h"
#include "text/tokenizer/tokenizer.h"

namespace pagedllm::tokenizer {

class IncrementalDetokenizer {
 public:
  IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens);

  // The new text `id` completes (may be ""). INVALID_ARGUMENT for an id outside
  // [0, vocab_size()); the stream is unchanged then.
  absl::StatusOr<std::string> Append(int32_t id);
  // What is held back, at the end of the sequence.
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  DecodeStream stream_;
};

}  // namespace pagedllm::tokenizer
