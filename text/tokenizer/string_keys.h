// Debian's Abseil is built with its own absl::string_view (not std::string_view), and only
// absl::string_view reaches the heterogeneous lookup of flat_hash_map<std::string, ...>.
#pragma once

#include <string_view>

#include "absl/strings/string_view.h"

namespace pagedllm::tokenizer {

inline absl::string_view Key(std::string_view text) { return {text.data(), text.size()}; }

}  // namespace pagedllm::tokenizer
