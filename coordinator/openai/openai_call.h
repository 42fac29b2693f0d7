// OpenAiCall: one /v1/completions or /v1/chat/completions request in flight. Its prompts run as
// engine requests (validated like gRPC's, by RequestIntake); their chunks become choices through
// the same GenerateStream as the gRPC path (text, stop strings, logprobs), then OpenAI JSON:
// server-sent events as they come (`stream`), or one response at the end. Choice i of prompt p
// has index p * n + i. Everything runs on the HTTP connection's strand; the engine's thread only
// posts. A client that goes away aborts every prompt, which frees their KV blocks; an error in
// one prompt fails the call and aborts the others.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "coordinator/frontend/request_intake.h"
#include "coordinator/http/http_server.h"
#include "coordinator/openai/openai_request.h"

namespace pagedllm::openai {

struct CallContext {
  coordinator::RequestIntake* intake = nullptr;  // outlives the call
  std::string served_model;                      // "model" in responses
};

// Submits `specs` (one per prompt of `request`, accepted by the intake) and answers through
// `exchange`. Returns at once; the call keeps itself alive until its response is complete.
void StartOpenAiCall(const CallContext& context, OpenAiRequest request,
                     std::vector<coordinator::RequestSpec> specs,
                     std::shared_ptr<http::HttpExchange> exchange);

}  // namespace pagedllm::openai
