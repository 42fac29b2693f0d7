// Comparing secrets (worker secrets, API keys) in time that does not depend on where they differ.
#pragma once

#include <cstddef>
#include <string_view>

namespace pagedllm {

inline bool SameSecret(std::string_view given, std::string_view expected) {
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    diff |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
  }
  return diff == 0;
}

}  // namespace pagedllm
