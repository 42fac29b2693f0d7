#include "text/tokenizer/byte_level.h"

#include <array>

#include "text/tokenizer/utf8.h"

namespace pagedllm::tokenizer {
namespace {

struct Tables {
  std::array<char32_t, 256> byte_to_unicode;
  std::array<int, 324> unicode_to_byte;  // every stand-in is below 256 + 68

  Tables() {
    unicode_to_byte.fill(-1);
    int next = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      byte_to_unicode[b] =
          printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + next++);
      unicode_to_byte[byte_to_unicode[b]] = b;
    }
  }
};

const Tables& GetTables() {
  static const Tables tables;
  return tables;
}

}  // namespace

char32_t ByteToUnicode(unsigned char byte) { return GetTables().byte_to_unicode[byte]; }

int UnicodeToByte(char32_t code_point) {
  const auto& table = GetTables().unicode_to_byte;
  return code_point < table.size() ? table[code_point] : -1;
}

bool ByteLevelToBytes(std::string_view token, std::string* bytes) {
  bytes->clear();
  for (size_t pos = 0; pos < token.size();) {
    int len;
    const int byte = UnicodeToByte(DecodeUtf8At(token, pos, &len));
    if (byte < 0) return false;
    bytes->push_back(static_cast<char>(byte));
    pos += len;
  }
  return true;
}

std::string BytesToByteLevel(std::string_view bytes) {
  std::string out;
  for (char c : bytes) AppendUtf8(ByteToUnicode(static_cast<unsigned char>(c)), &out);
  return out;
}

}  // namespace pagedllm::tokenizer
