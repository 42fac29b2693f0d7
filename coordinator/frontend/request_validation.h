// Checks a public GenerateRequest field by field and turns it into the engine's RequestSpec.
// Every error is INVALID_ARGUMENT (or FAILED_PRECONDITION for what the server cannot do yet) and
// names the field, the bound and the value: "sampling.top_p must be in (0, 1], got 1.5".
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "coordinator/engine/engine.h"
#include "pagedllm/v1/generation.pb.h"

namespace pagedllm::coordinator {

struct ValidationLimits {
  int vocab_size = 0;
  int max_model_len = 0;
  int max_request_id_length = 256;
};

// `fallback_seed` is used when the request sets no seed.
absl::StatusOr<RequestSpec> ValidateGenerateRequest(const pagedllm::v1::GenerateRequest& request,
                                                    const ValidationLimits& limits,
                                                    uint64_t fallback_seed);

}  // namespace pagedllm::coordinator
