// Scheduler: FCFS continuous batching over sequence groups, with chunked prefill, automatic
// prefix caching, parallel sampling and beam search by forking, and preemption by swapping or
// by recomputation.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "coordinator/block_manager/block_manager.h"
#include "coordinator/scheduler/sequence.h"

namespace pagedllm::coordinator {

// How a running group gives its blocks back when the pool runs out (the paper's 4.5).
enum class PreemptionMode {
  kAuto,       // swap a group of several sequences, recompute a single one
  kSwap,       // swap every group (recompute when the host pool is full)
  kRecompute,  // always recompute
};
const char* PreemptionModeName(PreemptionMode mode);
// "auto", "swap" or "recompute"; INVALID_ARGUMENT naming --preemption_mode otherwise.
absl::StatusOr<PreemptionMode> ParsePreemptionMode(const std::string& name);

struct SchedulerConfig {
  int32_t max_num_batched_tokens = 2048;  // tokens computed per step, all sequences together
  int32_t max_num_seqs = 256;             // running sequences at once (a group counts its width)
  int32_t max_model_len = 8192;           // prompt + max_tokens of one sequence
  int32_t max_waiting = 1024;             // AddGroup beyond this is RESOURCE_EXHAUSTED
  bool enable_prefix_caching = true;
  bool measure_kv_usage = false;  // SchedulerCounters' KV slot sums (costs a walk of the tables)
  PreemptionMode preemption_mode = PreemptionMode::kAuto;
  // The engine sends a step before the tokens of the one before it are back, where
  // CanRunAhead allows (async scheduling).
  bool async_scheduling = true;
  BlockManagerConfig blocks;
};

// One sequence's work in a step: after applying its table changes, compute the KV of
// token_ids (the sequence's tokens [begin, end)) at positions begin .. end-1.
struct ScheduledSequence {
  uint64_t seq_id = 0;
  int begin = 0;                              // == its num_computed_tokens when scheduled
  int end = 0;                                // <= its num_tokens()
  absl::InlinedVector<int32_t, 4> token_ids;  // [end - begin]; a decode's: no allocation
  bool sample = false;                        // end == num_tokens(): sample the next token
  // The workers' table for it starts empty, then gets new_block_ids: the whole table (first
  // schedule, after preemption, after a swap-in). Otherwise replacements are applied to the
  // table they hold and new_block_ids appended.
  bool reset_block_table = false;
  std::vector<int32_t> new_block_ids;          // appended to the table, in order
  std::vector<BlockReplacement> replacements;  // copy-on-write swaps, applied first
};

// A sequence the workers see for the first time, with what it samples with.
struct NewSequence {
  uint64_t seq_id = 0;
  SamplingParams sampling;
};

// child starts as a copy of parent's block table (on the workers, as the previous step left
// it) and samples with `sampling`.
struct SequenceFork {
  uint64_t parent_seq_id = 0;
  uint64_t child_seq_id = 0;
  SamplingParams sampling;
};

// One step, everything the workers need and nothing more: encoded as it is for them. They
// apply it in this order: forks, finished_seq_ids, preempted_seq_ids (their tables dropped),
// swap_out, swap_in, block_copies, new_sequences, then each scheduled sequence's table changes
// (reset, replacements, new_block_ids), then the forward pass.
struct SchedulerOutput {
  uint64_t step_id = 0;  // 1, 2, 3, ... with no gaps among the outputs that have work
  std::vector<SequenceFork> forks;
  // Finished, aborted or pruned since the previous step, among sequences the workers know:
  // the workers drop all their state for them.
  std::vector<uint64_t> finished_seq_ids;
  // Preempted in this step (by recompute or swap): the workers drop their tables (the
  // sequences come back later with reset_block_table).
  std::vector<uint64_t> preempted_seq_ids;
  std::vector<BlockSwap> swap_out;      // device -> host, before anything else touches the cache
  std::vector<BlockSwap> swap_in;       // host -> device; never in the same step as swap_out
  std::vector<BlockCopy> block_copies;  // copy-on-write, after the swaps
  std::vector<NewSequence> new_sequences;
  std::vector<ScheduledSequence> scheduled;  // running ones first, then swapped in, then new
  // Groups that can never run (they need more than the whole pool or token budget): the
  // scheduler has finished them; the caller fails their requests with this status.
  std::vector<std::pair<uint64_t, absl::Status>> failed_groups;
  int num_scheduled_tokens = 0;  // sum of end - begin
  // A group of it must see this step's tokens before its next step is scheduled: a beam search
  // (its beams are chosen from them) or n samples that have yet to fork (CanRunAhead).
  bool next_needs_tokens = false;

  bool empty() const { return scheduled.empty(); }
  // Anything the workers must hear of. An output without is not sent, and has step_id 0 (it
  // takes no step id).
  bool has_work() const {
    return !scheduled.empty() || !forks.empty() || !finished_seq_ids.empty() ||
           !preempted_seq_ids.empty() || !swap_out.empty() || !swap_in.empty() ||
           !block_copies.empty() || !new_sequences.empty();
  }
};

// Counters since construction.
struct SchedulerCounters {
  int64_t num_preemptions = 0;              // sequences preempted (either way)
  int64_t num_swapped_out = 0;              // sequences swapped out
  int64_t num_swapped_in = 0;               // sequences swapped in
  int64_t num_prefix_cache_queries = 0;     // tokens looked up in the prefix cache
  int64_t num_prefix_cache_hit_tokens = 0;  // of which found cached
  // With SchedulerConfig::measure_kv_usage, summed over the steps sent to the workers: the KV
  // slots of the blocks in use (blocks * block_size) and those of them holding a token once the
  // step has run (a shared block counts once). Waste = 1 - filled / allocated.
  int64_t num_kv_samples = 0;
  int64_t kv_slots_allocated_sum = 0;
  int64_t kv_slots_filled_sum = 0;

  void Add(const SchedulerCounters& other) {
    num_preemptions += other.num_preemptions;
    num_swapped_out += other.num_swapped_out;
    num_swapped_in += other.num_swapped_in;
    num_prefix_cache_queries += other.num_prefix_cache_queries;
    num_prefix_cache_hit_tokens += other.num_prefix_cache_hit_tokens;
    num_kv_samples += other.num_kv_samples;
    kv_slots_allocated_sum += other.kv_slots_allocated_sum;
    kv_slots_filled_sum += other.kv_slots_filled_sum;
  }
};

// Decides, each step, which sequences run and how many tokens each computes (vLLM v1's one
// progress model: every sequence's num_computed_tokens chases its compute_end()).
//
// Schedule():
//   1. running groups, oldest first: each sequence gets min(its uncomputed tokens, token
//      budget) tokens (1 for a decode; the next chunk for a prefill in progress). A beam group
//      of several beams runs all its beams in full or waits (they must sample together). If
//      the group's blocks do not fit, the newest running group is preempted (swapped to the
//      host pool or dropped for recomputation, per PreemptionMode) until they fit; when the
//      group itself is the newest left, it runs those of its sequences that fit (beams: none)
//      or is preempted itself, or, alone with the whole pool, fails (failed_groups).
//   2. if no one was preempted: swapped groups, oldest first, swapped back in.
//   3. if no one was preempted and none is swapped: waiting groups in arrival order, each
//      sequence starting from its longest cached prefix, while the token and sequence budgets
//      last and the head's first sequence's first chunk (beams: every beam's) fits in the free
//      blocks above the watermark; its other sequences run as far as the blocks allow. A head
//      that does not fit blocks everyone behind it (FCFS).
// OnStepDone() then advances num_computed_tokens, appends sampled tokens, registers newly
// full blocks in the prefix cache and forks n-sample groups whose prompt is computed. Stop
// conditions and beam pruning are the caller's (FinishSequence, ForkSequence, AppendToken).
//
// Calls alternate: Schedule, OnStepDone, Schedule, ... (every output, even an empty one,
// is acknowledged). Async scheduling adds one more order: Schedule (step t), RunAhead(t),
// Schedule (t + 1), OnStepDone(t), then RunAhead(t + 1) or OnStepDone(t + 1), ...: step t
// counts as computed as soon as it is sent, with a placeholder (kPendingTokenId) for each token
// it samples, so that step t + 1 is on its way while t runs; OnStepDone(t) then fills the
// placeholders in. AddGroup, Finish* may come at any time; a sequence finished while its step
// is in flight is skipped by OnStepDone. ForkSequence and AppendToken come between OnStepDone
// and the next Schedule.
//
// Not thread safe. Owns the groups, the sequences and the BlockManager.
//
// Invariants (CheckInvariants):
//   - every group is in exactly one of running / swapped / waiting, its status says which, and
//     its sequences' statuses agree; each holds at least one sequence;
//   - arrival order: each list is sorted by arrival (a preempted group goes back ahead of every
//     group that arrived after it);
//   - waiting sequences hold no blocks and have num_computed_tokens == 0; swapped ones hold
//     no device blocks;
//   - a running sequence holds ceil(num_computed_tokens / block_size) blocks (up to
//     ceil(num_tokens / block_size) while its step is in flight) and num_computed_tokens <=
//     compute_end();
//   - running groups' widths add up to at most max_num_seqs; no one has generated more than
//     max_tokens;
//   - the block manager's invariants; it holds device tables for running sequences only.
class Scheduler {
 public:
  explicit Scheduler(const SchedulerConfig& config);

  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a new group (its sequences' ids come from this scheduler). INVALID_ARGUMENT if it
  // can never run (empty prompt, max_tokens < 1, longer than max_model_len, wider than
  // max_num_seqs, more blocks than the pool); RESOURCE_EXHAUSTED if the queue is full.
  // Returns the group id.
  absl::StatusOr<uint64_t> AddGroup(GroupSpec spec);

  SchedulerOutput Schedule();
  // sampled: the token sampled for scheduled sequences with sample == true (entries for
  // sequences finished meanwhile are ignored). A sampling sequence without an entry is owed
  // its token by the caller (AppendToken; beam search). The caller checks the workers' reply
  // first.
  void OnStepDone(const SchedulerOutput& output,
                  const absl::flat_hash_map<uint64_t, int32_t>& sampled);

  // A new sequence of parent's group with parent's tokens and blocks (shared, copy on write)
  // and sampling. Returns its id.
  // sample_index >= 0 makes the child that sample of its group (its own seed); otherwise it
  // samples as its parent does (beams).
  uint64_t ForkSequence(uint64_t parent_seq_id, int sample_index = -1);
  // Async scheduling. True when the next step may be scheduled before this one's tokens are
  // back: no step is ahead already, and !output.next_needs_tokens.
  bool CanRunAhead(const SchedulerOutput& output) const;
  // The step just scheduled (and sent) counts as done but for its tokens: its sequences'
  // num_computed_tokens advance and each sampling one gets a kPendingTokenId token, which
  // OnStepDone(output, sampled) replaces. Schedule() may then run again. Requires
  // CanRunAhead(output). Sequences finished since Schedule() are skipped.
  void RunAhead(const SchedulerOutput& output);
  // The step that ran ahead and awaits its tokens (0: none).
  uint64_t step_ahead() const { return ahead_step_id_; }

  // Appends a generated token to a sequence whose tokens are all computed.
  void AppendToken(uint64_t seq_id, int32_t token_id);

  // Removes a sequence, frees its blocks now and hands it back with status `reason` (one of
  // the kFinished* values); its group goes once its last sequence does. NOT_FOUND if unknown.
  absl::StatusOr<std::unique_ptr<Sequence>> FinishSequence(uint64_t seq_id, SequenceStatus reason);
  // Finishes every sequence of a group. NOT_FOUND if unknown.
  absl::Status FinishGroup(uint64_t group_id, SequenceStatus reason);

  // nullptr if unknown. Valid until finished.
  Sequence* GetSequence(uint64_t seq_id) const;
  SequenceGroup* GetGroup(uint64_t group_id) const;
  int num_waiting() const;  // sequences
  int num_running() const;  // sequences
  int num_swapped() const;  // sequences
  bool has_unfinished() const { return !groups_.empty(); }
  bool step_in_flight() const { return step_in_flight_; }
  const SchedulerConfig& config() const { return config_; }
  const BlockManager& block_manager() const { return block_manager_; }
  const SchedulerCounters& counters() const { return counters_; }

  // Aborts with a message naming the sequence or block if an invariant above is broken.
  void CheckInvariants() const;

 private:
  struct PlannedSequence {
    Sequence* seq;
    int num_tokens;
  };
  // A group's work in a step: most groups are one sequence, so no allocation for them (this is
  // built for every running group every step).
  using Plan = absl::InlinedVector<PlannedSequence, 4>;
  using SlotRequests = absl::InlinedVector<SlotRequest, 4>;
  absl::Status ValidateNewGroup(const GroupSpec& spec) const;
  Sequence* NewSequenceOf(SequenceGroup* group, std::vector<int32_t> tokens, int sample_index,
                          const SamplingParams& base);
  // The running group's work this step under `budget` tokens (empty: nothing to do now).
  Plan PlanRunningGroup(const SequenceGroup& group, int budget) const;
  SlotRequests SlotRequestsOf(const Plan& plan) const;
  // Allocates the plan's slots (they must fit) and appends it to output->scheduled.
  void CommitPlan(const Plan& plan, SchedulerOutput* output);
  void PreemptGroup(SequenceGroup* group, SchedulerOutput* output);
  void FailGroup(SequenceGroup* group, absl::Status status, SchedulerOutput* output);
  // The longest cached prefix seq may start from (none without prefix caching).
  BlockManager::CachedPrefix FindCachedPrefix(Sequence* seq);
  // A sequence with nothing computed and no table starts from its cached prefix (taking
  // evictable blocks only when allowed: they count as free for others).
  void StartFromCache(Sequence* seq, bool may_take_free_blocks);
  // Keeps the plan's sequences, in order, whose blocks still fit in free_blocks; false when
  // nothing is left or the group must run whole (beams).
  bool TrimToFit(const SequenceGroup& group, int32_t free_blocks, Plan* plan) const;
  void ScheduleSwappedIn(int* budget, SchedulerOutput* output);
  void AdmitWaiting(int* budget, SchedulerOutput* output);
  void AppendTokenTo(Sequence* seq, int32_t token_id);  // AppendToken, the sequence looked up
  void UpdateBlockHashes(Sequence* seq);
  void MeasureKvUsage(const SchedulerOutput& output);
  void RegisterComputedBlocks(Sequence* seq);
  // OnStepDone of the step that ran ahead: its placeholders get their tokens.
  void ResolveAhead(const SchedulerOutput& output,
                    const absl::flat_hash_map<uint64_t, int32_t>& sampled);
  void ForkSamples(SequenceGroup* group);
  void InsertRunning(SequenceGroup* group);
  void RemoveFromQueue(SequenceGroup* group);

  const SchedulerConfig config_;
  BlockManager block_manager_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<SequenceGroup>> groups_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Sequence>> sequences_;
  std::vector<SequenceGroup*> running_;  // by arrival order
  std::vector<SequenceGroup*> swapped_;  // by arrival order
  std::deque<SequenceGroup*> waiting_;   // by arrival order
  std::vector<uint64_t> finished_since_last_step_;
  std::vector<SequenceFork> pending_forks_;
  int num_running_width_ = 0;  // max_seqs() of the running groups, added up
  uint64_t next_arrival_order_ = 0;
  uint64_t next_seq_id_ = 1;
  uint64_t next_group_id_ = 1;
  uint64_t last_step_id_ = 0;
  bool step_in_flight_ = false;
  uint64_t ahead_step_id_ = 0;  // RunAhead's step until its OnStepDone
  SchedulerCounters counters_;
};

}  // namespace pagedllm::coordinator
