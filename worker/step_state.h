// The worker's mirror of the coordinator's per-sequence state: block tables (append-only, copied
// on fork, dropped on preemption, reset when a sequence comes back, entries replaced by
// copy-on-write) and each sequence's sampling state (parameters, seed and draw counter: seeded
// sampling is reproducible). Applying a StepInstruction updates the mirror and yields the step's
// flat host-side batch. A step's last token of a sequence may be the placeholder for the token
// that sequence sampled in the step before (async scheduling): the batch says which sampled row
// of that step fills it, on the device (Ops::FillPlaceholders), so that no step waits for the
// host to learn the tokens of the one before. Not thread safe; used by the step thread.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "common/sampling_params.h"
#include "kernels/sampling_params.h"
#include "pagedllm/worker/v1/worker.pb.h"
#include "proto/worker_protocol.h"

namespace pagedllm::worker {

// One step's inputs in host memory; see ForwardBatch for the meaning of each field.
struct HostBatch {
  std::vector<int32_t> token_ids;     // [T]
  std::vector<int32_t> positions;     // [T]
  std::vector<int32_t> slot_mapping;  // [T]
  std::vector<int32_t> block_tables;  // [S * max_blocks_per_seq], row-major, padded with 0
  int32_t max_blocks_per_seq = 0;
  std::vector<int32_t> query_start;      // [S + 1]
  std::vector<int32_t> context_lens;     // [S]
  std::vector<int32_t> sample_rows;      // [P]
  std::vector<uint64_t> sample_seq_ids;  // [P]
  // [P]: the top logprobs each sampled row reports (-1: no logprobs at all).
  std::vector<int32_t> sample_top_logprobs;
  // Every sampled row is greedy without logprobs (the argmax on the device suffices).
  bool all_greedy = true;
  int32_t max_query_len = 0;          // the most tokens one sequence computes in the step
  std::vector<int32_t> block_copies;  // [num_copies * 2]: src, dst pairs
  // [num_fills * 2]: (index into token_ids, sample row of the step before) pairs. token_ids
  // holds 0 at each such index until the device fills in the token sampled there.
  std::vector<int32_t> placeholder_fills;

  int num_seqs() const { return static_cast<int>(context_lens.size()); }
  int num_tokens() const { return static_cast<int>(token_ids.size()); }
};

class StepState {
 public:
  StepState(int num_blocks, int block_size, int vocab_size)
      : num_blocks_(num_blocks), block_size_(block_size), vocab_size_(vocab_size) {}

  // Checks the step id follows the last one, updates the mirror (in the order the
  // StepInstruction's comment gives) and fills `batch`. Any inconsistency (unknown sequence,
  // fork into a known one, block id out of range, table too short for the positions, token id
  // out of range, bad sampling parameters) is FAILED_PRECONDITION / INVALID_ARGUMENT naming it.
  absl::Status Apply(const pagedllm::worker::v1::StepInstruction& step, HostBatch* batch);

  // The sampling parameters the sequence arrived with.
  const SamplingParams& sampling(uint64_t seq_id) const;
  // The sequence's block table as the mirror holds it (empty when unknown or dropped).
  std::vector<int32_t> block_table(uint64_t seq_id) const;
  bool knows(uint64_t seq_id) const { return sequences_.contains(seq_id); }
  // Sequences holding a block table.
  int num_tables() const;
  // The device sampler's parameters for the sequence's next token (kernels::SampleRows): its
  // parameters, its seed and how many tokens it sampled before; counts this draw.
  kernels::SampleRowParams NextSampleParams(uint64_t seq_id);
  int num_sequences() const { return static_cast<int>(sequences_.size()); }
  uint64_t last_step_id() const { return last_step_id_; }

 private:
  struct SequenceMirror {
    std::vector<int32_t> block_table;
    bool has_table = false;  // false after preemption, until the table is reset
    SamplingParams sampling;
    uint64_t num_draws = 0;  // tokens sampled so far (the device sampler's Philox counter)
    // The sample row of the last step that sampled for this sequence (0: none yet): a
    // placeholder of the step after stands for the token sampled there.
    int32_t last_sample_row = 0;
    uint64_t last_sampled_step = 0;
  };

  absl::Status AddSequence(uint64_t seq_id, const pagedllm::worker::v1::SamplingConfig& sampling,
                           SequenceMirror mirror);
  absl::Status ApplySequenceStep(const pagedllm::worker::v1::SequenceStep& seq_step,
                                 HostBatch* batch);

  int num_blocks_;
  int block_size_;
  int vocab_size_;
  uint64_t last_step_id_ = 0;
  absl::flat_hash_map<uint64_t, SequenceMirror> sequences_;
};

}  // namespace pagedllm::worker
