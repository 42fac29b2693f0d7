// tokenizer.json "added_tokens": tokens matched in the text before anything else and never split
// (special tokens like <|begin_of_text|>, and non-special ones like <think>). At each position the
// longest added token that starts there wins; lstrip / rstrip swallow the whitespace on that side
// and single_word only matches between non-word characters.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "text/tokenizer/json_fields.h"
#include "nlohmann/json.hpp"

namespace pagedllm::tokenizer {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;  // matched in the normalized text (the default for non-special ones)
  bool special = false;
};

// `list` is the "added_tokens" array.
absl::StatusOr<std::vector<AddedToken>> ParseAddedTokens(const nlohmann::json& list,
                                                         const JsonPath& at);

// A piece of the input: either plain text, or one added token.
struct Section {
  std::string_view text;
  int32_t token = -1;  // index into the matcher's token list, or -1 for plain text
};

// Immutable after Add(); thread safe.
class AddedTokenMatcher {
 public:
  // `pattern` is what is looked for (the content, or its normalized form); `token` indexes
  // `tokens` as passed to Split.
  void Add(std::string_view pattern, int32_t token);
  bool empty() const { return terminal_.size() <= 1; }

  // Cuts `text` into sections, applying each match's lstrip / rstrip to its text neighbours.
  // Sections of plain text may be empty after stripping.
  void Split(std::string_view text, const std::vector<AddedToken>& tokens,
             std::vector<Section>* sections) const;

 private:
  int32_t Child(int32_t node, unsigned char byte) const;

  bool first_byte_[256] = {};
  std::vector<int32_t> terminal_ = {-1};             // per trie node: token or -1
  absl::flat_hash_map<uint32_t, int32_t> children_;  // (node << 8 | byte) -> node
};

}  // namespace pagedllm::tokenizer
