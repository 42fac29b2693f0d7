// Checks a public GenerateRequest field by field and turns it into the engine's RequestSpec.
// Every error is INVALID_ARGUMENT (or FAILED_PRECONDITION for what the server cannot do) and
// names the field, the bound and the value: "sampling.top_p must be in (0, 1], got 1.5".
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "coordinator/engine/engine.h"
#include "text/tokenizer/tokenizer.h"
#include "pagedllm/v1/generation.pb.h"

namespace pagedllm::coordinator {

struct ValidationLimits {
  int vocab_size = 0;
  int max_model_len = 0;
  int max_request_id_length = 256;
  int max_stop_strings = 16;
  int max_stop_string_bytes = 1024;
  // Text longer than this cannot fit max_model_len whatever it encodes to: refused before it is
  // tokenized (0: no bound). See MaxTextBytes.
  size_t max_text_bytes = 0;
};

// max_model_len * tokenizer.max_token_text_bytes() * 4, or 0 without a bound (or tokenizer).
size_t MaxTextBytes(int max_model_len, const tokenizer::Tokenizer* tokenizer);

// `fallback_seed` is used when the request sets no seed. `tokenizer` (null when the server has
// none) encodes text prompts; without it text prompts and stop strings are FAILED_PRECONDITION.
absl::StatusOr<RequestSpec> ValidateGenerateRequest(const pagedllm::v1::GenerateRequest& request,
                                                    const ValidationLimits& limits,
                                                    uint64_t fallback_seed,
                                                    const tokenizer::Tokenizer* tokenizer);

}  // namespace pagedllm::coordinator
