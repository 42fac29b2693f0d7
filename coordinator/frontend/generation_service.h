// The public pagedllm.v1.Generation service, on gRPC's callback API: no thread per call. Each
// Generate request is validated (on gRPC's thread) and submitted to the engine; the engine's
// chunks become responses on a small WorkPool (GenerateStream: text, logprobs, stop strings) and
// are written one at a time, so thousands of open streams cost memory, not threads. A cancelled
// call, a passed deadline or a client that stops reading aborts the request, which frees its
// blocks.
#pragma once

#include <memory>

#include "coordinator/engine/engine.h"
#include "coordinator/frontend/request_intake.h"
#include "coordinator/frontend/work_pool.h"
#include "pagedllm/v1/generation.grpc.pb.h"

namespace pagedllm::coordinator {

class GenerationService final : public pagedllm::v1::Generation::CallbackService {
 public:
  // `intake` (keys, draining, validation; shared with the HTTP API) outlives the service. `info`
  // fills the static fields of GetStats (model, tp_size, block_size, ...).
  // `num_stream_threads`: the WorkPool's.
  GenerationService(RequestIntake* intake, pagedllm::v1::ServerStats info,
                    int num_stream_threads = 2);
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

 private:
  class GenerateCall;  // the reactor of one Generate call

  grpc::Status Authorize(const grpc::ServerContextBase& context) const;
  grpc::Status DoTokenize(const pagedllm::v1::TokenizeRequest& request,
                          pagedllm::v1::TokenizeResponse* response) const;
  grpc::Status DoDetokenize(const pagedllm::v1::DetokenizeRequest& request,
                            pagedllm::v1::DetokenizeResponse* response) const;
  void FillStats(pagedllm::v1::ServerStats* response) const;

  RequestIntake* const intake_;
  Engine* const engine_;
  const tokenizer::Tokenizer* const tokenizer_;
  const ValidationLimits limits_;
  const pagedllm::v1::ServerStats info_;
  std::unique_ptr<WorkPool> stream_pool_;
};

}  // namespace pagedllm::coordinator
