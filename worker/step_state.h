// The worker's mirror of the coordinator's per-sequence state: block tables (append-only, reset
// on preemption, entries replaced by copy-on-write) and each sequence's sampling state (config,
// seed and draw counter: seeded sampling is reproducible). Applying a StepInstruction updates the
// mirror and yields the step's flat host-side batch. Not thread safe; used by the step thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "kernels/sampling_params.h"
#include "pagedllm/worker/v1/worker.pb.h"
#include "worker/sampling/sampling_config.h"

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
  std::vector<int32_t> block_copies;     // [num_copies * 2]: src, dst pairs

  int num_seqs() const { return static_cast<int>(context_lens.size()); }
  int num_tokens() const { return static_cast<int>(token_ids.size()); }
};

class StepState {
 public:
  StepState(int num_blocks, int block_size, int vocab_size)
      : num_blocks_(num_blocks), block_size_(block_size), vocab_size_(vocab_size) {}

  // Checks the step id follows the last one, updates the mirror and fills `batch`.
  // Any inconsistency (unknown sequence, block id out of range, table too short for the
  // positions, token id out of range) is FAILED_PRECONDITION / INVALID_ARGUMENT naming it.
  absl::Status Apply(const pagedllm::worker::v1::StepInstruction& step, HostBatch* batch);

  // The sampling configuration the sequence arrived with.
  const SamplingConfig& sampling(uint64_t seq_id) const;
  // The device sampler's parameters for the sequence's next token (kernels::SampleRows): its
  // config, its seed (the fallback seed its step gave when the config has none) and how many
  // tokens it sampled before; counts this draw.
  kernels::SampleRowParams NextSampleParams(uint64_t seq_id);
  int num_sequences() const { return static_cast<int>(sequences_.size()); }
  uint64_t last_step_id() const { return last_step_id_; }

 private:
  struct SequenceMirror {
    std::vector<int32_t> block_table;
    std::optional<SamplingConfig> sampling;  // set once the sequence has arrived
    uint64_t seed = 0;                       // config.seed, or the fallback seed
    uint64_t num_draws = 0;  // tokens sampled so far (the device sampler's Philox counter)
  };

  absl::Status ApplySequenceStep(const pagedllm::worker::v1::SequenceStep& seq_step,
                                 HostBatch* batch);

  int num_blocks_;
  int block_size_;
  int vocab_size_;
  uint64_t last_step_id_ = 0;
  absl::flat_hash_map<uint64_t, SequenceMirror> sequences_;
};

}  // namespace pagedllm::worker
