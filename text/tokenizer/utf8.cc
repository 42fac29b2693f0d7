#include "text/tokenizer/utf8.h"

namespace pagedllm::tokenizer {

size_t FindInvalidUtf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= n) {
      uint64_t word;
      __builtin_memcpy(&word, s + i, 8);
      if (word & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (i + len > n) return i;
    if (s[i + 1] < lo || s[i + 1] > hi) return i;
    for (int k = 2; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

char32_t DecodeUtf8At(std::string_view text, size_t pos, int* length) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data()) + pos;
  const unsigned char c = s[0];
  if (c < 0x80) {
    *length = 1;
    return c;
  }
  if (c < 0xE0) {
    *length = 2;
    return (static_cast<char32_t>(c & 0x1F) << 6) | (s[1] & 0x3F);
  }
  if (c < 0xF0) {
    *length = 3;
    return (static_cast<char32_t>(c & 0x0F) << 12) | (static_cast<char32_t>(s[1] & 0x3F) << 6) |
           (s[2] & 0x3F);
  }
  *length = 4;
  return (static_cast<char32_t>(c & 0x07) << 18) | (static_cast<char32_t>(s[1] & 0x3F) << 12) |
         (static_cast<char32_t>(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsJsTrimSpace(char32_t cp) {
  switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
    case 0xFEFF:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

std::string_view TrimJsSpaceStart(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    int len;
    if (!IsJsTrimSpace(DecodeUtf8At(text, pos, &len))) break;
    pos += len;
  }
  return text.substr(pos);
}

std::string_view TrimJsSpaceEnd(std::string_view text) {
  size_t end = text.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    int len;
    if (!IsJsTrimSpace(DecodeUtf8At(text, start, &len))) break;
    end = start;
  }
  return text.substr(0, end);
}

// The WHATWG "UTF-8 decoder" algorithm (Encoding Standard, section 9.1.1).
void LossyUtf8Decoder::Append(std::string_view bytes, std::string* out) {
  for (size_t i = 0; i < bytes.size();) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    if (needed_ == 0) {
      ++i;
      if (b < 0x80) {
        out->push_back(static_cast<char>(b));
        continue;
      }
      lower_ = 0x80;
      upper_ = 0xBF;
      if (b >= 0xC2 && b <= 0xDF) {
        needed_ = 1;
        code_point_ = b & 0x1F;
      } else if (b >= 0xE0 && b <= 0xEF) {
        if (b == 0xE0) lower_ = 0xA0;
        if (b == 0xED) upper_ = 0x9F;
        needed_ = 2;
        code_point_ = b & 0x0F;
      } else if (b >= 0xF0 && b <= 0xF4) {
        if (b == 0xF0) lower_ = 0x90;
        if (b == 0xF4) upper_ = 0x8F;
        needed_ = 3;
        code_point_ = b & 0x07;
      } else {
        out->append(kReplacementChar);
        continue;
      }
      held_[0] = static_cast<char>(b);
      continue;
    }
    if (b < lower_ || b > upper_) {
      // The held bytes are a maximal invalid subpart; `b` is processed again from scratch.
      Reset();
      out->append(kReplacementChar);
      continue;
    }
    ++i;
    lower_ = 0x80;
    upper_ = 0xBF;
    code_point_ = (code_point_ << 6) | (b & 0x3F);
    held_[++seen_] = static_cast<char>(b);
    if (seen_ == needed_) {
      out->append(held_, static_cast<size_t>(needed_) + 1);
      Reset();
    }
  }
}

void LossyUtf8Decoder::Finish(std::string* out) {
  if (needed_ > 0) {
    Reset();
    out->append(kReplacementChar);
  }
}

}  // namespace pagedllm::tokenizer
