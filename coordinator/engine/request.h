// What a validated generation request asks for, and what the engine streams back.
// Plain C++: the frontend converts from and to the public proto.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/sampling_params.h"

namespace pagedllm::coordinator {

struct RequestSpec {
  std::string request_id;  // the client's (shown in responses and messages; may repeat)
  // The call's own handle on the request, unique and unguessable (the frontend makes it):
  // Engine::Abort and FinishChoice name it, so no other call can end this request.
  std::string key;
  std::vector<int32_t> prompt_token_ids;
  int max_tokens = 16;
  // sampling.seed is the first sample's (always set: the frontend picks one when the client did
  // not); sampling.num_top_logprobs is what the client asked for (-1: no logprobs).
  SamplingParams sampling;
  int n = 1;        // choices returned
  int best_of = 1;  // samples run (>= n), or the beam width
  bool use_beam_search = false;
  float length_penalty = 1.0f;  // beam search only
  bool early_stopping = false;  // beam search only
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  // Text output (the frontend's business; the engine ignores them).
  std::vector<std::string> stop_strings;
  bool include_stop_str_in_output = false;
  bool skip_special_tokens = true;

  // Choices stream token by token; otherwise (best_of > n, beam search) each choice comes in
  // one chunk once the request is done.
  bool streams() const { return !use_beam_search && best_of == n; }
  // Choices report cumulative_logprob.
  bool wants_cumulative_logprob() const {
    return sampling.num_top_logprobs >= 0 || n > 1 || best_of > 1 || use_beam_search;
  }
};

enum class FinishReason { kNone, kLength, kStop, kAbort };

struct TokenLogprobs {
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top;  // most likely first
};

// New output of one choice of a request since its previous chunk.
struct GenerationChunk {
  int choice_index = 0;
  std::vector<int32_t> token_ids;
  // One per token when the request wants_cumulative_logprob() (top lists only when the client
  // asked for logprobs).
  std::vector<TokenLogprobs> logprobs;
  FinishReason finish_reason = FinishReason::kNone;  // the choice's, on its last chunk
  bool request_done = false;  // the request's last chunk: nothing more will come
  absl::Status error;         // not OK: the request failed (nothing more will come)
};

}  // namespace pagedllm::coordinator
