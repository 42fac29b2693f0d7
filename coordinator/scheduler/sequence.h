// Sequence: one stream of tokens the scheduler moves from prompt to finish.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pagedllm::coordinator {

enum class SequenceStatus {
  kWaiting,          // queued, not yet admitted (holds no blocks)
  kRunning,          // admitted: holds blocks, gets tokens each step
  kPreempted,        // was running, lost its blocks; queued again to recompute all its tokens
  kFinishedStopped,  // stop token or string (decided by the caller)
  kFinishedLength,   // max_tokens or max_model_len reached
  kFinishedAborted,  // cancelled by the client or dropped by the engine
};
const char* SequenceStatusName(SequenceStatus status);
inline bool IsFinished(SequenceStatus status) {
  return status == SequenceStatus::kFinishedStopped || status == SequenceStatus::kFinishedLength ||
         status == SequenceStatus::kFinishedAborted;
}

// One sequence: its prompt and the tokens generated so far, and how far the KV cache has
// caught up with them. Every kind of progress (prefill, chunked prefill, decode, recompute
// after preemption) is num_computed_tokens chasing num_tokens():
//
//   token_ids   [ prompt ............ | generated ....... ]
//               0            num_prompt_tokens      num_tokens()
//   KV cached   [ 0, num_computed_tokens )
//
// The next step computes token_ids[num_computed_tokens, end) at positions of the same
// numbers, and samples a new token only when end == num_tokens().
//
// Once added to a Scheduler, the scheduler owns the sequence and is its only writer; read
// it through Scheduler::Get between calls.
struct Sequence {
  Sequence(uint64_t seq_id, std::string request_id, std::vector<int32_t> prompt_token_ids,
           int max_tokens);

  int num_tokens() const { return static_cast<int>(token_ids.size()); }
  int num_generated_tokens() const { return num_tokens() - num_prompt_tokens; }
  // Tokens whose KV is still to be computed (the last sampled token counts: its KV is
  // written by the step that samples the next one).
  int num_uncomputed_tokens() const { return num_tokens() - num_computed_tokens; }

  uint64_t seq_id = 0;             // unique for the lifetime of the scheduler; never reused
  std::string request_id;          // the client's request (several sequences may share it)
  std::vector<int32_t> token_ids;  // prompt then generated tokens
  int num_prompt_tokens = 0;
  int num_computed_tokens = 0;  // tokens [0, num_computed_tokens) have their KV in the cache
  int max_tokens = 0;           // most tokens to generate
  SequenceStatus status = SequenceStatus::kWaiting;
  uint64_t arrival_order = 0;   // set by Scheduler::AddSequence; earlier arrivals are smaller
  bool ever_scheduled = false;  // the workers have heard of it
  int num_preemptions = 0;
};

}  // namespace pagedllm::coordinator
