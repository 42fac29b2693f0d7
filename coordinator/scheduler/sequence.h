// Sequence and SequenceGroup: the streams of tokens the scheduler moves from prompt to finish,
// and the request that owns them (one sequence, n parallel samples, or the beams of a search).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/sampling_params.h"

namespace pagedllm::coordinator {

// A sampled token the caller has not received yet: with async scheduling (Scheduler::RunAhead)
// the next step is scheduled before the tokens of the step before it are back.
inline constexpr int32_t kPendingTokenId = -1;

enum class SequenceStatus {
  kWaiting,          // queued, not yet admitted (holds no blocks)
  kRunning,          // admitted: holds blocks, gets tokens each step
  kPreempted,        // was running, lost its blocks; queued again to recompute all its tokens
  kSwapped,          // was running; its blocks are in the workers' host swap space
  kFinishedStopped,  // stop token or string (decided by the caller)
  kFinishedLength,   // max_tokens or max_model_len reached
  kFinishedAborted,  // cancelled by the client, dropped by the engine or pruned (beam search)
};
const char* SequenceStatusName(SequenceStatus status);
inline bool IsFinished(SequenceStatus status) {
  return status == SequenceStatus::kFinishedStopped || status == SequenceStatus::kFinishedLength ||
         status == SequenceStatus::kFinishedAborted;
}

struct SequenceGroup;

// One sequence: its prompt and the tokens generated so far, and how far the KV cache has
// caught up with them. Every kind of progress (prefill, chunked prefill, prefix-cache hit,
// decode, recompute after preemption) is num_computed_tokens chasing compute_end():
//
//   token_ids   [ prompt ............ | generated ....... ]
//               0            num_prompt_tokens      num_tokens()
//   KV cached   [ 0, num_computed_tokens )
//
// The next step computes token_ids[num_computed_tokens, end) at positions of the same
// numbers, and samples a new token only when end == num_tokens().
//
// Once added to a Scheduler, the scheduler owns the sequence; read it through
// Scheduler::GetSequence between calls.
struct Sequence {
  Sequence(uint64_t seq_id, SequenceGroup* group, std::vector<int32_t> token_ids,
           int num_prompt_tokens, SamplingParams sampling);

  int num_tokens() const { return static_cast<int>(token_ids.size()); }
  int num_generated_tokens() const { return num_tokens() - num_prompt_tokens; }
  // Where computing stops for now: num_tokens(), or the group's fork point while it has one.
  int compute_end() const;
  // Tokens whose KV is still to be computed (the last sampled token counts: its KV is
  // written by the step that samples the next one). 0 while the caller owes it a token.
  int num_uncomputed_tokens() const { return compute_end() - num_computed_tokens; }

  uint64_t seq_id = 0;  // unique for the lifetime of the scheduler; never reused
  SequenceGroup* group = nullptr;
  std::vector<int32_t> token_ids;  // prompt then generated tokens
  int num_prompt_tokens = 0;
  int num_computed_tokens = 0;  // tokens [0, num_computed_tokens) have their KV in the cache
  SamplingParams sampling;      // what the workers sample with (seed already per sequence)
  int sample_index = 0;         // which of the group's samples (the seed is base + index)
  SequenceStatus status = SequenceStatus::kWaiting;
  bool known_to_workers = false;       // the workers hold its sampling state
  bool needs_table_reset = true;       // the workers' table for it is stale: send it whole
  std::vector<uint64_t> block_hashes;  // prefix-cache hashes of its full blocks, in order
  int num_registered_blocks = 0;       // leading table entries offered to the prefix cache
  int num_preemptions = 0;
};

enum class GroupStatus { kWaiting, kRunning, kSwapped };

// What AddGroup needs to know about a request.
struct GroupSpec {
  std::string request_id;
  std::vector<int32_t> prompt_token_ids;
  int max_tokens = 16;      // most tokens each sequence generates
  SamplingParams sampling;  // sample i gets seed sampling.seed + i
  int num_samples = 1;      // parallel samples (best_of), or the beam width
  bool beam_search = false;
};

// A request's sequences, scheduled, preempted and swapped together.
//   - One sample: a single sequence.
//   - n parallel samples: one sequence computes the prompt but its last token (fork_at =
//     prompt - 1), then forks into num_samples sequences that share the prompt's blocks; each
//     computes the last prompt token itself (copying the shared last block on write) and
//     samples with its own seed.
//   - Beam search: one sequence computes the prompt; the caller forks and prunes beams after
//     every step (Scheduler::ForkSequence / AppendToken / FinishSequence).
struct SequenceGroup {
  uint64_t group_id = 0;
  std::string request_id;
  uint64_t arrival_order = 0;
  int max_tokens = 0;
  int num_samples = 1;
  bool beam_search = false;
  int fork_at = -1;  // >= 0 while the group's one sequence has yet to fork (n > 1)
  GroupStatus status = GroupStatus::kWaiting;
  std::vector<Sequence*> seqs;  // live sequences, owned by the scheduler
  int num_preemptions = 0;

  // Sequences the group may hold at once (max_num_seqs counts these).
  int max_seqs() const { return num_samples; }
};

}  // namespace pagedllm::coordinator
