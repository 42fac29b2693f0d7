// Helpers shared by the end-to-end tests: golden files, concurrent Generate calls, health.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "pagedllm/v1/generation.grpc.pb.h"

namespace pagedllm::testing {

nlohmann::json LoadJson(const std::string& path);

struct GenerateOutcome {
  grpc::Status status;
  std::vector<int32_t> token_ids;
  std::vector<pagedllm::v1::TokenLogprob> logprobs;
  pagedllm::v1::FinishReason finish_reason = pagedllm::v1::FINISH_REASON_UNSPECIFIED;
  int num_chunks = 0;
  std::vector<std::string> texts;  // each chunk's text, in order (when the server has a tokenizer)
  std::string text() const;        // all of them
};

// One Generate call, read to the end.
GenerateOutcome Generate(pagedllm::v1::Generation::Stub& stub,
                         const pagedllm::v1::GenerateRequest& request, int timeout_s = 120);

// All requests at once, one thread each; outcomes in request order.
std::vector<GenerateOutcome> GenerateConcurrently(
    pagedllm::v1::Generation::Stub& stub,
    const std::vector<pagedllm::v1::GenerateRequest>& requests);

pagedllm::v1::GenerateRequest GreedyRequest(const std::vector<int32_t>& prompt, int max_tokens,
                                            int logprobs = -1);

// A seeded sampling request (ignore_eos, so exactly max_tokens come back); top-k, top-p and
// min-p are left unset (off) for the caller to add.
pagedllm::v1::GenerateRequest SampledRequest(const std::vector<int32_t>& prompt, int max_tokens,
                                             float temperature, uint64_t seed);

// tests/data/models/<model>: a small random Llama model (tools/make_golden_models.py) with its
// golden.json (greedy continuation_ids, logprobs and top-5 per prompt, from transformers).
std::string GoldenModelDir(const std::string& model);
// Every case's prompt_ids in golden.json, in order.
std::vector<std::vector<int32_t>> GoldenPrompts(const nlohmann::json& golden);

// grpc.health.v1 Check("") status name: "SERVING", "NOT_SERVING", or the call's error.
std::string HealthStatus(const std::string& address);

}  // namespace pagedllm::testing
