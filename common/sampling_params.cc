#include "common/sampling_params.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace pagedllm {

absl::Status ValidateSamplingParams(const SamplingParams& params, int vocab_size,
                                    const char* field_prefix) {
  const auto invalid = [field_prefix](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(field_prefix, parts...));
  };
  if (vocab_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("vocab_size must be > 0, got ", vocab_size));
  }
  // Written so that NaN fails every range check.
  if (!(std::isfinite(params.temperature) && params.temperature >= 0.0f &&
        params.temperature <= 100.0f)) {
    return invalid("temperature must be in [0, 100], got ", params.temperature);
  }
  if (!(params.top_p > 0.0f && params.top_p <= 1.0f)) {
    return invalid("top_p must be in (0, 1], got ", params.top_p);
  }
  if (params.top_k < 0) return invalid("top_k must be >= 0 (0 = off), got ", params.top_k);
  if (!(params.min_p >= 0.0f && params.min_p <= 1.0f)) {
    return invalid("min_p must be in [0, 1], got ", params.min_p);
  }
  if (params.num_top_logprobs < -1 || params.num_top_logprobs > kMaxSequenceTopLogprobs) {
    return invalid("num_top_logprobs must be in [-1, ", kMaxSequenceTopLogprobs,
                   "] (-1 = none), got ", params.num_top_logprobs);
  }
  if (params.num_top_logprobs > vocab_size) {
    return invalid("num_top_logprobs ", params.num_top_logprobs, " exceeds vocab_size ",
                   vocab_size);
  }
  return absl::OkStatus();
}

}  // namespace pagedllm
