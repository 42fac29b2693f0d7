#include "coordinator/frontend/request_validation.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace pagedllm::coordinator {

namespace v1 = pagedllm::v1;

namespace {

absl::Status Invalid(const std::string& message) { return absl::InvalidArgumentError(message); }

absl::Status ValidateSampling(const v1::SamplingParams& params, const ValidationLimits& limits,
                              uint64_t fallback_seed, RequestSpec* spec) {
  if (params.has_max_tokens()) {
    if (params.max_tokens() < 1) {
      return Invalid(absl::StrCat("sampling.max_tokens must be >= 1, got ", params.max_tokens()));
    }
    spec->max_tokens = static_cast<int>(std::min<uint32_t>(params.max_tokens(), 1u << 30));
  }
  SamplingOptions& sampling = spec->sampling;
  if (params.has_temperature()) {
    const float t = params.temperature();
    if (!std::isfinite(t) || t < 0.0f || t > 100.0f) {
      return Invalid(absl::StrCat("sampling.temperature must be in [0, 100], got ", t));
    }
    sampling.temperature = t;
  }
  if (params.has_top_p()) {
    const float p = params.top_p();
    if (!(p > 0.0f && p <= 1.0f)) {
      return Invalid(absl::StrCat("sampling.top_p must be in (0, 1], got ", p));
    }
    sampling.top_p = p;
  }
  if (params.has_top_k()) {
    if (params.top_k() < -1) {
      return Invalid(
          absl::StrCat("sampling.top_k must be >= 0 (0 or -1 = off), got ", params.top_k()));
    }
    sampling.top_k = std::max(0, params.top_k());
  }
  if (params.has_min_p()) {
    const float p = params.min_p();
    if (!(p >= 0.0f && p <= 1.0f)) {
      return Invalid(absl::StrCat("sampling.min_p must be in [0, 1], got ", p));
    }
    sampling.min_p = p;
  }
  sampling.seed = params.has_seed() ? params.seed() : fallback_seed;
  if (params.has_n() && params.n() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling.n = ", params.n(), ": only n = 1 is served in this version"));
  }
  if (params.stop_size() > 0) {
    return absl::FailedPreconditionError(
        "sampling.stop: stop strings need the tokenizer, which this version does not load; "
        "use sampling.stop_token_ids");
  }
  for (int i = 0; i < params.stop_token_ids_size(); ++i) {
    const int32_t id = params.stop_token_ids(i);
    if (id < 0 || id >= limits.vocab_size) {
      return Invalid(absl::StrCat("sampling.stop_token_ids[", i, "] = ", id,
                                  " is outside the vocabulary [0, ", limits.vocab_size, ")"));
    }
    spec->stop_token_ids.push_back(id);
  }
  spec->ignore_eos = params.ignore_eos();
  if (params.has_logprobs()) {
    if (params.logprobs() > 20) {
      return Invalid(absl::StrCat("sampling.logprobs must be in [0, 20], got ", params.logprobs()));
    }
    sampling.num_top_logprobs = static_cast<int32_t>(params.logprobs());
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RequestSpec> ValidateGenerateRequest(const v1::GenerateRequest& request,
                                                    const ValidationLimits& limits,
                                                    uint64_t fallback_seed) {
  RequestSpec spec;
  if (request.request_id().size() > static_cast<size_t>(limits.max_request_id_length)) {
    return Invalid(absl::StrCat("request_id has ", request.request_id().size(), " bytes, at most ",
                                limits.max_request_id_length, " are allowed"));
  }
  spec.request_id = request.request_id();
  switch (request.prompt_case()) {
    case v1::GenerateRequest::kText:
      return absl::FailedPreconditionError(
          "prompt.text: this server has no tokenizer loaded yet; send prompt.token_ids");
    case v1::GenerateRequest::kTokenIds:
      break;
    case v1::GenerateRequest::PROMPT_NOT_SET:
      return Invalid("prompt: set one of text or token_ids");
  }
  const auto& ids = request.token_ids().ids();
  if (ids.empty()) return Invalid("prompt.token_ids is empty");
  for (int i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= limits.vocab_size) {
      return Invalid(absl::StrCat("prompt.token_ids[", i, "] = ", ids[i],
                                  " is outside the vocabulary [0, ", limits.vocab_size, ")"));
    }
  }
  if (ids.size() >= limits.max_model_len) {
    return Invalid(absl::StrCat("prompt has ", ids.size(), " tokens, max_model_len is ",
                                limits.max_model_len,
                                " (and at least one token must be generated)"));
  }
  spec.prompt_token_ids.assign(ids.begin(), ids.end());
  if (absl::Status status = ValidateSampling(request.sampling(), limits, fallback_seed, &spec);
      !status.ok()) {
    return status;
  }
  return spec;
}

}  // namespace pagedllm::coordinator
