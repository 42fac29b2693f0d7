// RequestIntake: what every public front door (the gRPC service, the OpenAI HTTP API) does
// before a request reaches the engine, in one place: API keys, draining, the validation of a
// GenerateRequest, the server's seed when the client gave none, and the request's unguessable
// key. It also counts the calls in flight over all doors (the drain waits for them). Thread safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "coordinator/engine/engine.h"
#include "coordinator/frontend/request_validation.h"
#include "pagedllm/v1/generation.pb.h"
#include "text/tokenizer/tokenizer.h"

namespace pagedllm::coordinator {

class RequestIntake {
 public:
  // `tokenizer` may be null (token ids only); `engine` and `tokenizer` outlive the intake.
  RequestIntake(Engine* engine, ValidationLimits limits, const tokenizer::Tokenizer* tokenizer);

  // With keys set, every call must carry "authorization: Bearer <one of them>". Before serving.
  void set_api_keys(std::vector<std::string> keys) { api_keys_ = std::move(keys); }
  bool needs_api_key() const { return !api_keys_.empty(); }
  // OK, or UNAUTHENTICATED saying what is wrong. `authorization`: the header's value ("" if none).
  absl::Status Authorize(absl::string_view authorization) const;

  // From now on Accept refuses with UNAVAILABLE ("draining"); calls in flight go on.
  void StartDraining() { draining_ = true; }
  bool draining() const { return draining_.load(); }

  // Validates `request` and makes its RequestSpec: the seed (the server's when unset), a new
  // key, and "req-<key>" as request_id when the client gave none. Errors as
  // ValidateGenerateRequest's, or UNAVAILABLE while draining.
  absl::StatusOr<RequestSpec> Accept(const pagedllm::v1::GenerateRequest& request);

  // A call in flight: from its first Accept to its last byte (the drain waits for them).
  void CallStarted() { ++active_calls_; }
  void CallEnded() { --active_calls_; }
  int active_calls() const { return active_calls_.load(); }

  Engine* engine() const { return engine_; }
  const tokenizer::Tokenizer* tokenizer() const { return tokenizer_; }
  const ValidationLimits& limits() const { return limits_; }

 private:
  // 128 random bits from the OS (std::random_device), as 32 hex digits: request keys and the
  // request ids the server assigns cannot be guessed.
  std::string NewRequestKey();
  uint64_t NextSeed();

  Engine* const engine_;
  const ValidationLimits limits_;
  const tokenizer::Tokenizer* const tokenizer_;
  std::vector<std::string> api_keys_;
  std::atomic<bool> draining_{false};
  std::atomic<int> active_calls_{0};
  std::mutex seed_mutex_;
  std::mt19937_64 seed_source_;       // guarded by seed_mutex_
  std::random_device random_device_;  // guarded by seed_mutex_
};

}  // namespace pagedllm::coordinator
