// Scheduler: FCFS continuous batching with chunked prefill and preemption by recompute.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "coordinator/block_manager/block_manager.h"
#include "coordinator/scheduler/sequence.h"

namespace pagedllm::coordinator {

struct SchedulerConfig {
  int32_t max_num_batched_tokens = 2048;  // tokens computed per step, all sequences together
  int32_t max_num_seqs = 256;             // running sequences at once
  int32_t max_model_len = 8192;           // prompt + max_tokens of one sequence
  int32_t max_waiting = 1024;             // AddSequence beyond this is RESOURCE_EXHAUSTED
  BlockManagerConfig blocks;
};

// One sequence's work in a step: compute the KV of token_ids[begin, end) at positions
// begin .. end-1, after applying the block table changes below.
struct ScheduledSequence {
  uint64_t seq_id = 0;
  int begin = 0;        // == the sequence's num_computed_tokens when scheduled
  int end = 0;          // <= num_tokens()
  bool sample = false;  // end == num_tokens(): sample the next token from the last position
  bool is_new = false;  // the workers see this sequence for the first time (send its params)
  // First step after (re)admission: the workers' table for it starts empty, then gets
  // new_block_ids. Otherwise new_block_ids are appended to the table they already hold.
  bool reset_block_table = false;
  std::vector<int32_t> new_block_ids;          // appended to the table, in order
  std::vector<BlockReplacement> replacements;  // copy-on-write swaps, applied first
};

// One step for the workers. They apply it in this order: drop finished_seq_ids and
// preempted_seq_ids, do block_copies, apply each scheduled sequence's table changes
// (reset, replacements, new_block_ids), then run the forward pass.
struct SchedulerOutput {
  uint64_t step_id = 0;                      // 0, 1, 2, ... with no gaps
  std::vector<ScheduledSequence> scheduled;  // running ones first, then newly admitted
  // Done by the workers before the forward pass: src blocks may be given to other
  // sequences in this very step.
  std::vector<BlockCopy> block_copies;
  // Preempted in this step: the workers drop their tables (they come back later with
  // reset_block_table).
  std::vector<uint64_t> preempted_seq_ids;
  // Finished or aborted since the previous step, among sequences the workers had seen:
  // the workers drop all their state for them.
  std::vector<uint64_t> finished_seq_ids;
  int num_scheduled_tokens = 0;  // sum of end - begin

  bool empty() const { return scheduled.empty(); }
};

// Decides, each step, which sequences run and how many tokens each computes (vLLM v1's one
// progress model: every sequence's num_computed_tokens chases its num_tokens()).
//
// Schedule():
//   1. running sequences, oldest first: each gets min(its uncomputed tokens, token budget)
//      tokens (1 for a decode; the next chunk for a prefill in progress). If its blocks do
//      not fit, the newest running sequence is preempted (blocks freed, num_computed_tokens
//      back to 0, put at the front of the waiting queue with its generated tokens) until
//      they fit, or until the sequence itself was the one preempted.
//   2. if no one was preempted: waiting sequences in arrival order, while the token and
//      sequence budgets last and the head's first chunk fits in the free blocks above the
//      watermark. A head that does not fit blocks everyone behind it (FCFS).
// OnStepDone() then advances num_computed_tokens and appends sampled tokens. Stop
// conditions are the caller's: it calls Finish.
//
// Calls alternate: Schedule, OnStepDone, Schedule, ... (every output, even an empty one,
// is acknowledged). AddSequence, Finish and Abort may come at any time; a sequence finished
// while its step is in flight is skipped by OnStepDone.
//
// Not thread safe. Owns the sequences and the BlockManager.
//
// Invariants (CheckInvariants):
//   - every sequence is either running or waiting, and its status says which;
//   - arrival order: running sequences, then waiting ones, are sorted by arrival, and every
//     running one arrived before every waiting one;
//   - waiting sequences hold no blocks and have num_computed_tokens == 0;
//   - a running one holds ceil(num_computed_tokens / block_size) blocks (up to
//     ceil(num_tokens / block_size) while its step is in flight) and num_computed_tokens <
//     num_tokens();
//   - at most max_num_seqs running; no one has generated more than max_tokens;
//   - the block manager's invariants, and it holds tables for the running sequences only.
class Scheduler {
 public:
  explicit Scheduler(const SchedulerConfig& config);

  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a new sequence (status kWaiting, no generated tokens). INVALID_ARGUMENT if it can
  // never run (empty prompt, max_tokens < 1, longer than max_model_len, more blocks than the
  // pool); ALREADY_EXISTS for a seq_id in use; RESOURCE_EXHAUSTED if the queue is full.
  absl::Status AddSequence(std::unique_ptr<Sequence> seq);

  SchedulerOutput Schedule();
  // sampled: the token sampled for each scheduled sequence with sample == true (entries for
  // sequences finished meanwhile are ignored). The caller checks the workers' reply first.
  void OnStepDone(const SchedulerOutput& output,
                  const absl::flat_hash_map<uint64_t, int32_t>& sampled);

  // Removes a waiting or running sequence, frees its blocks now and hands it back with
  // status `reason` (one of the kFinished* values). NOT_FOUND if unknown.
  absl::StatusOr<std::unique_ptr<Sequence>> Finish(uint64_t seq_id, SequenceStatus reason);
  absl::StatusOr<std::unique_ptr<Sequence>> Abort(uint64_t seq_id) {
    return Finish(seq_id, SequenceStatus::kFinishedAborted);
  }

  // nullptr if unknown. Valid until the sequence is finished.
  Sequence* Get(uint64_t seq_id) const;
  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  int num_running() const { return static_cast<int>(running_.size()); }
  bool has_unfinished() const { return !sequences_.empty(); }
  bool step_in_flight() const { return step_in_flight_; }
  const SchedulerConfig& config() const { return config_; }
  const BlockManager& block_manager() const { return block_manager_; }
  // Preemptions since construction.
  int64_t num_preemptions() const { return num_preemptions_; }

  // Aborts with a message naming the sequence or block if an invariant above is broken.
  void CheckInvariants() const;

 private:
  // Frees the newest running sequence and queues it at the front of the waiting queue.
  void PreemptNewestRunning(SchedulerOutput* output);
  absl::Status ValidateNewSequence(const Sequence& seq) const;

  const SchedulerConfig config_;
  BlockManager block_manager_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Sequence>> sequences_;
  std::vector<Sequence*> running_;  // by arrival order
  std::deque<Sequence*> waiting_;   // by arrival order
  std::vector<uint64_t> finished_since_last_step_;
  uint64_t next_arrival_order_ = 0;
  uint64_t next_step_id_ = 0;
  bool step_in_flight_ = false;
  int64_t num_preemptions_ = 0;
};

}  // namespace pagedllm::coordinator
