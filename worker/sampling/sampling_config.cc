#include "worker/sampling/sampling_config.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace pagedllm::worker {

absl::Status ValidateSamplingConfig(const SamplingConfig& config, int vocab_size) {
  if (vocab_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("vocab_size must be > 0, got ", vocab_size));
  }
  // Written so that NaN fails every range check.
  if (!(std::isfinite(config.temperature) && config.temperature >= 0.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("temperature must be finite and >= 0, got ", config.temperature));
  }
  if (!(config.top_p > 0.0f && config.top_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in (0, 1], got ", config.top_p));
  }
  if (config.top_k < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_k must be >= 0 (0 = off), got ", config.top_k));
  }
  if (!(config.min_p >= 0.0f && config.min_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("min_p must be in [0, 1], got ", config.min_p));
  }
  if (config.num_top_logprobs < -1 || config.num_top_logprobs > kMaxTopLogprobs) {
    return absl::InvalidArgumentError(absl::StrCat("num_top_logprobs must be in [-1, ",
                                                   kMaxTopLogprobs, "] (-1 = none), got ",
                                                   config.num_top_logprobs));
  }
  if (config.num_top_logprobs > vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("num_top_logprobs ", config.num_top_logprobs,
                                                   " exceeds vocab_size ", vocab_size));
  }
  return absl::OkStatus();
}

}  // namespace pagedllm::worker
