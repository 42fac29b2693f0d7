// GenerateStream: one Generate call's output, from engine chunks to GenerateResponse messages:
// per choice its text (TextStream: incremental detokenization, stop strings), token ids,
// logprobs, cumulative logprob and finish reason, and the call's one log line at its end. Runs on
// a frontend thread, never on the engine's. Not thread safe (its call serializes it).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/engine/engine.h"
#include "coordinator/frontend/text_stream.h"
#include "text/tokenizer/tokenizer.h"
#include "absl/status/status.h"
#include "pagedllm/v1/generation.pb.h"

namespace pagedllm::coordinator {

class GenerateStream {
 public:
  // `spec` as validated (request_id and key set); `tokenizer` may be null (token ids only).
  // `engine` hears of choices a stop string ended (FinishChoice). Both outlive the stream.
  GenerateStream(const RequestSpec& spec, const tokenizer::Tokenizer* tokenizer, Engine* engine);

  struct Output {
    std::optional<pagedllm::v1::GenerateResponse> response;  // what to send, if anything
    bool done = false;  // the call is over: `status` is its status (after `response`)
    absl::Status status;
  };
  // The next chunks of the request's handle.
  Output Process(std::vector<GenerationChunk>& chunks);

  // "request <id>: 12 prompt + 30 output tokens, 1 choices, first token 8.1 ms, total 210.4 ms,
  // finish length" (written once when the call ends, whatever ended it).
  std::string LogLine() const;

 private:
  Engine* const engine_;
  const std::string request_id_;
  const std::string key_;
  const bool client_logprobs_;
  const bool with_cumulative_;
  const int num_choices_;
  const size_t num_prompt_tokens_;
  std::vector<std::optional<TextStream>> texts_;  // per choice (with a tokenizer)
  std::vector<char> finished_;
  std::vector<double> cumulative_;
  std::vector<FinishReason> finish_of_;
  int num_open_;
  bool request_done_ = false;
  const std::chrono::steady_clock::time_point started_;
  double first_token_ms_ = -1.0;
  size_t num_output_tokens_ = 0;
};

}  // namespace pagedllm::coordinator
