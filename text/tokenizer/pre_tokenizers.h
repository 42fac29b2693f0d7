// tokenizer.json "pre_tokenizer": cuts a normalized section of text into pieces that the model
// encodes independently. Supported: Split (Regex or String pattern; behavior Isolated or
// Removed), ByteLevel (add_prefix_space, use_regex; last step only), Metaspace (replacement,
// prepend_scheme first/always/never, split) and Sequence; anything else fails to load naming
// the type. Immutable, thread safe.
//
// Byte-level tokenizers run on raw bytes: the ByteLevel step only splits and prepends spaces, and
// the BPE model's vocabulary is translated from the byte-level alphabet into raw bytes at load,
// so no text is ever spelled in "Ġ"s while encoding.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "text/tokenizer/json_fields.h"
#include "text/tokenizer/regex.h"
#include "nlohmann/json.hpp"

namespace pagedllm::tokenizer {

// The pieces of one section. Views point into the section's text or into `storage`.
struct PreTokenizedText {
  std::vector<std::string_view> pieces;
  std::deque<std::string> storage;  // text that pre-tokenizers created
  std::vector<std::string_view> scratch;
  std::vector<Regex::Match> matches;

  std::string_view Keep(std::string text) {
    storage.push_back(std::move(text));
    return storage.back();
  }
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces text->pieces with their pre-tokenization. `section_index` counts the sections the
  // added tokens cut the input into (added tokens included), as Metaspace "first" needs it.
  virtual absl::Status PreTokenize(int section_index, PreTokenizedText* text) const = 0;
};

struct ParsedPreTokenizer {
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  bool byte_level = false;  // ends with ByteLevel: pieces are raw bytes for a byte-level vocab
};

// `config` is the "pre_tokenizer" object (not null).
absl::StatusOr<ParsedPreTokenizer> ParsePreTokenizer(const nlohmann::json& config,
                                                     const JsonPath& at);

}  // namespace pagedllm::tokenizer
