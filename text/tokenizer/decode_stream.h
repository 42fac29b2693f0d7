// Turns a stream of ids into text exactly as decoding all of them at once would (see decoder.h),
// emitting text as soon as no later id can change it:
//   - bytes of an incomplete UTF-8 sequence (ByteLevel) and a run of <0xNN> tokens
//     (ByteFallback, decoded as a whole) are held until complete.
// Each Append costs O(length of the new text), whatever came before. Not thread safe; one per
// sequence.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "text/tokenizer/decoder.h"
#include "text/tokenizer/utf8.h"

namespace pagedllm::tokenizer {

class DecodeStream {
 public:
  // `decoder` outlives the stream.
  DecodeStream(const Decoder& decoder, bool skip_special_tokens);

  // Appends to `out` the text that `id` completes. `id` must be in [0, decoder.size()).
  void Append(int32_t id, std::string* out);
  // Ends the stream: appends everything still held.
  void Finish(std::string* out);

 private:
  void FlushByteRun(std::string* text);
  void Emit(std::string_view text, std::string* out);  // the Strip stage

  const Decoder& decoder_;
  const bool skip_special_tokens_;
  bool first_token_ = true;
  int strip_remaining_;
  LossyUtf8Decoder lossy_;  // kByteLevel
  std::string byte_run_;    // kPieces with ByteFallback
  std::string scratch_;
};

}  // namespace pagedllm::tokenizer
