// The public pagedllm.v1.Generation service (gRPC sync API: one handler thread per call).
// Validates each request, submits it to the engine and streams its chunks; a cancelled call
// or a client that stops reading aborts the request, which frees its blocks.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "coordinator/engine/engine.h"
#include "coordinator/frontend/request_validation.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "pagedllm/v1/generation.grpc.pb.h"

namespace pagedllm::coordinator {

class GenerationService final : public pagedllm::v1::Generation::Service {
 public:
  // `info` fills the static fields of GetStats (model, tp_size, block_size, ...). `tokenizer`
  // (may be null: token ids only) outlives the service.
  GenerationService(Engine* engine, ValidationLimits limits, pagedllm::v1::ServerStats info,
                    const tokenizer::Tokenizer* tokenizer);

  grpc::Status Generate(grpc::ServerContext* context, const pagedllm::v1::GenerateRequest* request,
                        grpc::ServerWriter<pagedllm::v1::GenerateResponse>* writer) override;
  grpc::Status Tokenize(grpc::ServerContext* context, const pagedllm::v1::TokenizeRequest* request,
                        pagedllm::v1::TokenizeResponse* response) override;
  grpc::Status Detokenize(grpc::ServerContext* context,
                          const pagedllm::v1::DetokenizeRequest* request,
                          pagedllm::v1::DetokenizeResponse* response) override;
  grpc::Status GetStats(grpc::ServerContext* context, const pagedllm::v1::GetStatsRequest* request,
                        pagedllm::v1::ServerStats* response) override;

  // With keys set, every call must carry the metadata "authorization: Bearer <one of them>"
  // (UNAUTHENTICATED otherwise). Call before serving.
  void set_api_keys(std::vector<std::string> keys) { api_keys_ = std::move(keys); }

  // From now on new Generate calls get UNAVAILABLE ("draining"); those in flight go on.
  void StartDraining() { draining_ = true; }
  // Generate calls in flight.
  int active_calls() const { return active_calls_.load(); }

 private:
  uint64_t NextSeed();
  grpc::Status Authorize(const grpc::ServerContext& context) const;
  // 128 random bits from the OS (std::random_device), as 32 hex digits: request keys and the
  // request ids the server assigns cannot be guessed.
  std::string NewRequestKey();

  Engine* engine_;
  const tokenizer::Tokenizer* const tokenizer_;
  const ValidationLimits limits_;
  const pagedllm::v1::ServerStats info_;
  std::mutex seed_mutex_;
  std::mt19937_64 seed_source_;
  std::random_device random_device_;  // guarded by seed_mutex_
  std::vector<std::string> api_keys_;
  std::atomic<bool> draining_{false};
  std::atomic<int> active_calls_{0};
};

}  // namespace pagedllm::coordinator
