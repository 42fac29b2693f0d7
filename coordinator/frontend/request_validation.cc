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

// n, best_of and beam search; params.temperature etc. are already in spec->sampling.
absl::Status ValidateSamplesAndBeams(const v1::SamplingParams& params, RequestSpec* spec) {
  constexpr uint32_t kMaxSamples = 16;
  const uint32_t n = params.has_n() ? params.n() : 1;
  if (n < 1 || n > kMaxSamples) {
    return Invalid(absl::StrCat("sampling.n must be in [1, ", kMaxSamples, "], got ", n));
  }
  const uint32_t best_of = params.has_best_of() ? params.best_of() : n;
  if (best_of < n || best_of > kMaxSamples) {
    return Invalid(absl::StrCat("sampling.best_of must be in [n = ", n, ", ", kMaxSamples,
                                "], got ", best_of));
  }
  spec->n = static_cast<int>(n);
  spec->best_of = static_cast<int>(best_of);
  spec->use_beam_search = params.use_beam_search();
  if (params.has_length_penalty()) {
    const float penalty = params.length_penalty();
    if (!std::isfinite(penalty) || std::abs(penalty) > 100.0f) {
      return Invalid(
          absl::StrCat("sampling.length_penalty must be finite, in [-100, 100], got ", penalty));
    }
    spec->length_penalty = penalty;
  }
  spec->early_stopping = params.has_early_stopping() && params.early_stopping();
  if (!spec->use_beam_search) return absl::OkStatus();
  // Beam search is greedy: its candidates are the most likely tokens of every beam.
  if (params.has_temperature() && params.temperature() != 0.0f) {
    return Invalid(
        absl::StrCat("sampling.temperature must be 0 (or unset) with use_beam_search, "
                     "got ",
                     params.temperature()));
  }
  if ((params.has_top_p() && params.top_p() != 1.0f) ||
      (params.has_top_k() && params.top_k() > 0) ||
      (params.has_min_p() && params.min_p() != 0.0f)) {
    return Invalid("sampling.top_p, top_k and min_p must be unset (or off) with use_beam_search");
  }
  spec->sampling.temperature = 0.0f;
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
  SamplingParams& sampling = spec->sampling;
  if (params.has_temperature()) sampling.temperature = params.temperature();
  if (params.has_top_p()) sampling.top_p = params.top_p();
  if (params.has_top_k()) {
    // -1 is the OpenAI / vLLM spelling of "off".
    if (params.top_k() < -1) {
      return Invalid(
          absl::StrCat("sampling.top_k must be >= 0 (0 or -1 = off), got ", params.top_k()));
    }
    sampling.top_k = std::max(0, params.top_k());
  }
  if (params.has_min_p()) sampling.min_p = params.min_p();
  sampling.seed = params.has_seed() ? params.seed() : fallback_seed;
  if (params.has_logprobs()) {
    if (params.logprobs() > static_cast<uint32_t>(kMaxClientTopLogprobs)) {
      return Invalid(absl::StrCat("sampling.logprobs must be in [0, ", kMaxClientTopLogprobs,
                                  "], got ", params.logprobs()));
    }
    sampling.num_top_logprobs = static_cast<int32_t>(params.logprobs());
  }
  PAGEDLLM_RETURN_IF_ERROR(ValidateSamplingParams(sampling, limits.vocab_size, "sampling."));
  PAGEDLLM_RETURN_IF_ERROR(ValidateSamplesAndBeams(params, spec));
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
  return absl::OkStatus();
}

}  // namespace

size_t MaxTextBytes(int max_model_len, const tokenizer::Tokenizer* tokenizer) {
  if (tokenizer == nullptr || tokenizer->max_token_text_bytes() == 0 || max_model_len <= 0) {
    return 0;
  }
  return static_cast<size_t>(max_model_len) * tokenizer->max_token_text_bytes() * 4;
}

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
      if (limits.max_text_bytes > 0 && text.size() > limits.max_text_bytes) {
        return Invalid(absl::StrCat(field, " has ", text.size(), " bytes: more than ",
                                    limits.max_text_bytes, " cannot fit max_model_len ",
                                    limits.max_model_len, " tokens"));
      }
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
  // An explicit max_tokens must fit (as vLLM and OpenAI say); the default is cut to what fits.
  const int64_t total = static_cast<int64_t>(spec.prompt_token_ids.size()) + spec.max_tokens;
  if (request.sampling().has_max_tokens() && total > limits.max_model_len) {
    return Invalid(absl::StrCat("sampling.max_tokens is ", request.sampling().max_tokens(),
                                " and the prompt has ", spec.prompt_token_ids.size(), " tokens: ",
                                total, " tokens exceed max_model_len ", limits.max_model_len));
  }
  return spec;
}

}  // namespace pagedllm::coordinator
