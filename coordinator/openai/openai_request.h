// An OpenAI /v1/completions or /v1/chat/completions body, read into what the engine runs: one
// pagedllm.v1.GenerateRequest per prompt (the public gRPC request, so both doors share one
// validation), plus what shapes the HTTP response. Field errors are INVALID_ARGUMENT naming
// the JSON field ("top_p must be a number, got string"); see FieldOf for the field itself.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "pagedllm/v1/generation.pb.h"

namespace pagedllm::openai {

enum class Endpoint { kCompletions, kChatCompletions };

struct OpenAiRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;  // as given ("" when absent)
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: a last chunk with the usage
  bool echo = false;           // completions: the prompt's text starts each choice
  // Completions: `logprobs` (top alternatives per token); chat: `top_logprobs` when `logprobs`
  // is true. -1: no logprobs.
  int top_logprobs = -1;
  int n = 1;
  // One per prompt, each with the same sampling. Chat: one, its prompt the rendered template.
  std::vector<pagedllm::v1::GenerateRequest> prompts;
  // Chat only: the body's messages, tools and template arguments, read and checked (each
  // message has a role and a string content; tool call arguments parsed into objects), for
  // the chat template.
  nlohmann::ordered_json messages;
  nlohmann::ordered_json tools;  // null when absent
  bool add_generation_prompt = true;
  bool continue_final_message = false;
  nlohmann::ordered_json chat_template_kwargs = nlohmann::ordered_json::object();
};

// Reads a body of `endpoint`. Chat prompts are left empty: the caller renders the template.
absl::StatusOr<OpenAiRequest> ParseOpenAiRequest(Endpoint endpoint, const nlohmann::json& body);

// The JSON field an INVALID_ARGUMENT message names ("top_p must be ..." -> "top_p"), or "".
std::string FieldOf(const absl::Status& status);

}  // namespace pagedllm::openai
