// What a validated generation request asks for, and what the engine streams back.
// Plain C++: the frontend converts from and to the public proto.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace pagedllm::coordinator {

struct SamplingOptions {
  float temperature = 1.0f;  // 0 = greedy
  float top_p = 1.0f;
  int32_t top_k = 0;  // 0 = off
  float min_p = 0.0f;
  uint64_t seed = 0;              // always set (the frontend picks one when the client did not)
  int32_t num_top_logprobs = -1;  // -1: no logprobs
};

struct RequestSpec {
  std::string request_id;
  std::vector<int32_t> prompt_token_ids;
  int max_tokens = 16;
  SamplingOptions sampling;
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  // Text output (the frontend's business; the engine ignores them).
  std::vector<std::string> stop_strings;
  bool include_stop_str_in_output = false;
  bool skip_special_tokens = true;
};

enum class FinishReason { kNone, kLength, kStop, kAbort };

struct TokenLogprobs {
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top;  // most likely first
};

// New output of one request since the previous chunk.
struct GenerationChunk {
  std::vector<int32_t> token_ids;
  std::vector<TokenLogprobs> logprobs;  // one per token when logprobs were asked for
  FinishReason finish_reason = FinishReason::kNone;
  absl::Status error;  // not OK: the request failed (nothing more will come)
};

}  // namespace pagedllm::coordinator
