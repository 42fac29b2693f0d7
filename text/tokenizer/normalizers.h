// tokenizer.json "normalizer": rewrites each piece of input text (between added tokens) before
// pre-tokenization. Supported: NFC, NFD, NFKC, NFKD, Prepend, Replace (String or Regex pattern),
// Strip and Sequence; anything else fails to load naming the type. Immutable, thread safe.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "text/tokenizer/json_fields.h"
#include "nlohmann/json.hpp"

namespace pagedllm::tokenizer {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Rewrites `text` (valid UTF-8; stays valid).
  virtual void Normalize(std::string* text) const = 0;
};

// `config` is the "normalizer" object (not null).
absl::StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(const nlohmann::json& config,
                                                            const JsonPath& at);

// Unicode normalization forms; exposed for tests.
enum class UnicodeForm { kNfc, kNfd, kNfkc, kNfkd };
std::string NormalizeUnicode(std::string_view text, UnicodeForm form);

}  // namespace pagedllm::tokenizer
