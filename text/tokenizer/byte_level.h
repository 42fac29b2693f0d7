// GPT-2's byte-level alphabet: every byte has a printable stand-in code point (bytes_to_unicode),
// so vocabularies of byte-level BPE models are written in it ("Ġ" is the space byte 0x20).
// The tokenizer works on raw bytes and translates a vocabulary into them once, at load.
#pragma once

#include <string>
#include <string_view>

namespace pagedllm::tokenizer {

// The stand-in code point of `byte`.
char32_t ByteToUnicode(unsigned char byte);

// The byte whose stand-in is `code_point`, or -1 when it stands for none.
int UnicodeToByte(char32_t code_point);

// Translates `token` (valid UTF-8, written in the byte-level alphabet) to the raw bytes it
// stands for; false (and *bytes unspecified) when some character is not in the alphabet.
bool ByteLevelToBytes(std::string_view token, std::string* bytes);

// The byte-level spelling of raw `bytes` (the inverse of ByteLevelToBytes).
std::string BytesToByteLevel(std::string_view bytes);

}  // namespace pagedllm::tokenizer
