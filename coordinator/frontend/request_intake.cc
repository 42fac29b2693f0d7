#include "coordinator/frontend/request_intake.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/constant_time.h"

namespace pagedllm::coordinator {

RequestIntake::RequestIntake(Engine* engine, ValidationLimits limits,
                             const tokenizer::Tokenizer* tokenizer)
    : engine_(engine),
      limits_(limits),
      tokenizer_(tokenizer),
      seed_source_(std::random_device{}()) {}

absl::Status RequestIntake::Authorize(absl::string_view authorization) const {
  if (api_keys_.empty()) return absl::OkStatus();
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "this server needs an API key: send \"authorization: Bearer <key>\"");
  }
  constexpr absl::string_view kBearer = "Bearer ";
  bool match = false;
  if (absl::StartsWith(authorization, kBearer)) {
    const std::string given(authorization.substr(kBearer.size()));
    // Every key is compared in full, whatever matched before.
    for (const std::string& key : api_keys_) match = SameSecret(given, key) || match;
  }
  if (!match) return absl::UnauthenticatedError("the API key is not valid");
  return absl::OkStatus();
}

absl::StatusOr<RequestSpec> RequestIntake::Accept(const pagedllm::v1::GenerateRequest& request) {
  if (draining_) {
    return absl::UnavailableError(
        "the server is draining before it shuts down; send the request elsewhere");
  }
  absl::StatusOr<RequestSpec> spec =
      ValidateGenerateRequest(request, limits_, NextSeed(), tokenizer_);
  if (!spec.ok()) return spec.status();
  // The engine knows the request by a key of the call's own: a client's request_id may be
  // anything (and repeat), and must never reach another call's request.
  spec->key = NewRequestKey();
  if (spec->request_id.empty()) spec->request_id = absl::StrCat("req-", spec->key);
  return spec;
}

std::string RequestIntake::NewRequestKey() {
  uint64_t words[2];
  {
    std::lock_guard<std::mutex> lock(seed_mutex_);
    words[0] = (static_cast<uint64_t>(random_device_()) << 32) | random_device_();
    words[1] = (static_cast<uint64_t>(random_device_()) << 32) | random_device_();
  }
  return absl::StrCat(absl::Hex(words[0], absl::kZeroPad16), absl::Hex(words[1], absl::kZeroPad16));
}

uint64_t RequestIntake::NextSeed() {
  std::lock_guard<std::mutex> lock(seed_mutex_);
  return seed_source_();
}

}  // namespace pagedllm::coordinator
