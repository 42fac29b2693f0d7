// UTF-8 helpers for the tokenizer: validation with the offending offset, code point decoding
// and encoding, the whitespace sets the reference tokenizers use, and a streaming lossy decoder
// that turns arbitrary bytes into valid UTF-8 exactly like the WHATWG TextDecoder (one U+FFFD per
// maximal invalid subpart), whether the bytes arrive at once or a few at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pagedllm::tokenizer {

inline constexpr char kReplacementChar[] = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

// Offset of the first byte at which `text` stops being valid UTF-8 (overlong forms, surrogates,
// code points past U+10FFFF and truncated sequences are invalid), or std::string_view::npos.
size_t FindInvalidUtf8(std::string_view text);

// Bytes in the sequence that `lead` starts (1 for ASCII and for stray continuation bytes).
inline int Utf8SequenceLength(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xF0) return 4;
  if (lead >= 0xE0) return 3;
  if (lead >= 0xC0) return 2;
  return 1;
}

// The code point that starts at text[pos]; `text` must be valid UTF-8 there. Sets *length.
char32_t DecodeUtf8At(std::string_view text, size_t pos, int* length);

void AppendUtf8(char32_t code_point, std::string* out);

// JavaScript's String.prototype.trim set (WhiteSpace + LineTerminator): what the reference
// implementation strips around added tokens with lstrip / rstrip.
bool IsJsTrimSpace(char32_t code_point);
std::string_view TrimJsSpaceStart(std::string_view text);
std::string_view TrimJsSpaceEnd(std::string_view text);

// Streams bytes into valid UTF-8: complete code points are appended to `out` as soon as their
// last byte arrives; an incomplete tail is held until the next bytes or Finish(), and every
// maximal invalid subpart becomes one U+FFFD. Not thread safe.
class LossyUtf8Decoder {
 public:
  void Append(std::string_view bytes, std::string* out);
  // Ends the byte stream: a held incomplete sequence becomes one U+FFFD.
  void Finish(std::string* out);
  // Whether bytes are held (an incomplete sequence).
  bool has_pending() const { return needed_ > 0; }

 private:
  void Reset() { needed_ = seen_ = 0; }

  char32_t code_point_ = 0;
  int needed_ = 0;  // continuation bytes the current sequence needs in total
  int seen_ = 0;    // continuation bytes seen so far
  unsigned char lower_ = 0x80, upper_ = 0xBF;
  char held_[4] = {0, 0, 0, 0};
};

}  // namespace pagedllm::tokenizer
