// The public pagedllm.v1.Generation service, on gRPC's callback API: no thread per call. Each
// Generate request is validated (on gRPC's thread) and submitted to the engine; the engine's
// chunks become responses on a small WorkPool (GenerateStream: text, logprobs, stop strings) and
// are written one at a time, so thousands of open streams cost memory, not threads. A cancelled
// call, a passed deadline or a client that stops reading aborts the request, which frees its
// blocks.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "coordinator/engine/engine.h"
#include "coordinator/frontend/request_validation.h"
#include "coordinator/frontend/work_pool.h"
#include "text/tokenizer/tokenizer.h"
#include "pagedllm/v1/generation.grpc.pb.h"

namespace pagedllm::coordinator {

class GenerationService final : public pagedllm::v1::Generation::CallbackService {
 public:
  // `info` fills the static fields of GetStats (model, tp_size, block_size, ...). `tokenizer`
  // (may be null: token ids only) outlives the service. `num_stream_threads`: the WorkPool's.
  GenerationService(Engine* engine, ValidationLimits limits, pagedllm::v1::ServerStats info,
                    const tokenizer::Tokenizer* tokenizer, int num_stream_threads = 2);
  ~GenerationService() override;

  grpc::ServerWriteReactor<pagedllm::v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context, const pagedllm::v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const pagedllm::v1::TokenizeRequest* request,
                                     pagedllm::v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* context,
                                       const pagedllm::v1::DetokenizeRequest* request,
                                       pagedllm::v1::DetokenizeResponse* response) override;
  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* context,
                                     const pagedllm::v1::GetStatsRequest* request,
                                     pagedllm::v1::ServerStats* response) override;

  // With keys set, every call must carry the metadata "authorization: Bearer <one of them>"
  // (UNAUTHENTICATED otherwise). Call before serving.
  void set_api_keys(std::vector<std::string> keys) { api_keys_ = std::move(keys); }

  // From now on new Generate calls get UNAVAILABLE ("draining"); those in flight go on.
  void StartDraining() { draining_ = true; }
  // Generate calls in flight.
  int active_calls() const { return active_calls_.load(); }

 private:
  class GenerateCall;  // the reactor of one Generate call

  uint64_t NextSeed();
  grpc::Status Authorize(const grpc::ServerContextBase& context) const;
  grpc::Status DoTokenize(const pagedllm::v1::TokenizeRequest& request,
                          pagedllm::v1::TokenizeResponse* response) const;
  grpc::Status DoDetokenize(const pagedllm::v1::DetokenizeRequest& request,
                            pagedllm::v1::DetokenizeResponse* response) const;
  void FillStats(pagedllm::v1::ServerStats* response) const;
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
  std::unique_ptr<WorkPool> stream_pool_;
};

}  // namespace pagedllm::coordinator
