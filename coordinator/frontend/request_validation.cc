#include "coordinator/frontend/request_validation.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace pagedllm::coordinator {

namespace v1 = pagedllm::v1;

namespace {

absl::Status Invalid(const std::string& message) { return absl::InvalidArgumentError(message); }

absl::Status ValidateStopStrings(const v1::SamplingParams& params, const ValidationLimits& limits,
                                 bool has_tokenizer, RequestSpec* spec) {
  if (params.stop_size() == 0) return absl::OkStatus();
  if (!has_tokenizer) {
    return absl::FailedPreconditionError(
        "sampling.stop: stop strings need a tokenizer, and this server's model directory has no "
        "tokenizer.json; use sampling.stop_token_ids");
  }
  if (params.stop_size() > limits.max_stop_strings) {
    return Invalid(absl::StrCat("sampling.stop has ", params.stop_size(), " strings, at most ",
                                limits.max_stop_strings, " are allowed"));
  }
  for (int i = 0; i < params.stop_size(); ++i) {
    const std::string& stop = params.stop(i);
    if (stop.empty() || stop.size() > static_cast<size_t>(limits.max_stop_string_bytes)) {
      return Invalid(absl::StrCat("sampling.stop[", i, "] has ", stop.size(),
                                  " bytes; it must have 1 to ", limits.max_stop_string_bytes));
    }
    spec->stop_strings.push_back(stop);
  }
  spec->include_stop_str_in_output = params.include_stop_str_in_output();
  return absl::OkStatus();
}

absl::Status ValidateSampling(const v1::SamplingParams& params, const ValidationLimits& limits,
                              uint64_t fallback_seed, bool has_tokenizer, RequestSpec* spec) {
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
  PAGEDLLM_RETURN_IF_ERROR(ValidateStopStrings(params, limits, has_tokenizer, spec));
  spec->skip_special_tokens =
      params.has_skip_special_tokens() ? params.skip_special_tokens() : true;
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
                                                    uint64_t fallback_seed,
                                                    const tokenizer::Tokenizer* tokenizer) {
  RequestSpec spec;
  if (request.request_id().size() > static_cast<size_t>(limits.max_request_id_length)) {
    return Invalid(absl::StrCat("request_id has ", request.request_id().size(), " bytes, at most ",
                                limits.max_request_id_length, " are allowed"));
  }
  spec.request_id = request.request_id();
  std::vector<int32_t> prompt;
  const bool is_text = request.prompt_case() == v1::GenerateRequest::kText ||
                       request.prompt_case() == v1::GenerateRequest::kTextBytes;
  switch (request.prompt_case()) {
    case v1::GenerateRequest::kText:
    case v1::GenerateRequest::kTextBytes: {
      const char* field =
          request.prompt_case() == v1::GenerateRequest::kText ? "prompt.text" : "prompt.text_bytes";
      const std::string& text = request.prompt_case() == v1::GenerateRequest::kText
                                    ? request.text()
                                    : request.text_bytes();
      if (tokenizer == nullptr) {
        return absl::FailedPreconditionError(
            absl::StrCat(field,
                         ": this server's model directory has no tokenizer.json; send "
                         "prompt.token_ids"));
      }
      if (text.empty()) return Invalid(absl::StrCat(field, " is empty"));
      absl::StatusOr<std::vector<int32_t>> tokens =
          tokenizer->Encode(text, /*add_special_tokens=*/true);
      if (!tokens.ok()) {
        return absl::Status(tokens.status().code(),
                            absl::StrCat(field, ": ", tokens.status().message()));
      }
      prompt = *std::move(tokens);
      if (prompt.empty()) return Invalid(absl::StrCat(field, " encodes to no tokens"));
      break;
    }
    case v1::GenerateRequest::kTokenIds:
      prompt.assign(request.token_ids().ids().begin(), request.token_ids().ids().end());
      if (prompt.empty()) return Invalid("prompt.token_ids is empty");
      break;
    case v1::GenerateRequest::PROMPT_NOT_SET:
      return Invalid("prompt: set one of text or token_ids");
  }
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (prompt[i] >= 0 && prompt[i] < limits.vocab_size) continue;
    if (is_text) {
      return Invalid(absl::StrCat("the prompt text encodes to token id ", prompt[i], " (position ",
                                  i, "), outside the model's vocabulary [0, ", limits.vocab_size,
                                  "): the tokenizer does not fit the model"));
    }
    return Invalid(absl::StrCat("prompt.token_ids[", i, "] = ", prompt[i],
                                " is outside the vocabulary [0, ", limits.vocab_size, ")"));
  }
  if (prompt.size() >= static_cast<size_t>(limits.max_model_len)) {
    return Invalid(absl::StrCat("prompt has ", prompt.size(), " tokens, max_model_len is ",
                                limits.max_model_len,
                                " (and at least one token must be generated)"));
  }
  spec.prompt_token_ids = std::move(prompt);
  PAGEDLLM_RETURN_IF_ERROR(
      ValidateSampling(request.sampling(), limits, fallback_seed, tokenizer != nullptr, &spec));
  return spec;
}

}  // namespace pagedllm::coordinator
