// tokenizer.json "post_processor" for a single sequence: the special tokens placed before and
// after the encoded text when add_special_tokens is true. Supported: TemplateProcessing (one
// "A" sequence with SpecialToken items around it), BertProcessing, RobertaProcessing, ByteLevel
// (nothing to add) and Sequence of those.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "text/tokenizer/json_fields.h"
#include "nlohmann/json.hpp"

namespace pagedllm::tokenizer {

struct SpecialTokenTemplate {
  bool present = false;  // a template was given (else tokenizer_config.json's add_bos/eos apply)
  std::vector<int32_t> prefix;
  std::vector<int32_t> suffix;
};

// `config` is the "post_processor" object (not null).
absl::StatusOr<SpecialTokenTemplate> ParsePostProcessor(const nlohmann::json& config,
                                                        const JsonPath& at);

}  // namespace pagedllm::tokenizer
