// Test helpers: a Scheduler driver that checks invariants after every mutation.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "coordinator/scheduler/scheduler.h"
#include "gtest/gtest.h"

namespace pagedllm::coordinator::testing {

// Prompt tokens seq_id * 1000 + i, so that every sequence's tokens are recognizable.
inline std::unique_ptr<Sequence> MakeSequence(uint64_t seq_id, int num_prompt_tokens,
                                              int max_tokens) {
  std::vector<int32_t> prompt(num_prompt_tokens);
  for (int i = 0; i < num_prompt_tokens; ++i) prompt[i] = static_cast<int32_t>(seq_id * 1000 + i);
  return std::make_unique<Sequence>(seq_id, absl::StrCat("request-", seq_id), std::move(prompt),
                                    max_tokens);
}

inline SchedulerConfig TestConfig(int32_t num_blocks, int32_t block_size,
                                  int32_t max_num_batched_tokens = 2048,
                                  int32_t max_num_seqs = 256) {
  SchedulerConfig config;
  config.blocks.num_blocks = num_blocks;
  config.blocks.block_size = block_size;
  config.blocks.watermark = 0.0;
  config.max_num_batched_tokens = max_num_batched_tokens;
  config.max_num_seqs = max_num_seqs;
  return config;
}

inline const ScheduledSequence* FindScheduled(const SchedulerOutput& output, uint64_t seq_id) {
  for (const ScheduledSequence& s : output.scheduled) {
    if (s.seq_id == seq_id) return &s;
  }
  return nullptr;
}

// Drives a Scheduler the way the engine loop will: Schedule, OnStepDone with a fresh token
// for each sampling sequence, then Finish (kFinishedLength) whoever reached max_tokens.
// Checks the scheduler's invariants after every call.
class SchedulerDriver {
 public:
  explicit SchedulerDriver(const SchedulerConfig& config) : scheduler_(config) {
    scheduler_.CheckInvariants();
  }

  absl::Status Add(uint64_t seq_id, int num_prompt_tokens, int max_tokens) {
    absl::Status status =
        scheduler_.AddSequence(MakeSequence(seq_id, num_prompt_tokens, max_tokens));
    scheduler_.CheckInvariants();
    return status;
  }
  SchedulerOutput Schedule() {
    SchedulerOutput output = scheduler_.Schedule();
    scheduler_.CheckInvariants();
    return output;
  }
  void Done(const SchedulerOutput& output) {
    absl::flat_hash_map<uint64_t, int32_t> sampled;
    for (const ScheduledSequence& s : output.scheduled) {
      if (s.sample) sampled[s.seq_id] = next_token_++;
    }
    scheduler_.OnStepDone(output, sampled);
    scheduler_.CheckInvariants();
    for (const ScheduledSequence& s : output.scheduled) {
      const Sequence* seq = scheduler_.Get(s.seq_id);
      if (seq != nullptr && seq->num_generated_tokens() == seq->max_tokens) {
        EXPECT_TRUE(Finish(s.seq_id, SequenceStatus::kFinishedLength).ok());
      }
    }
  }
  SchedulerOutput Step() {
    SchedulerOutput output = Schedule();
    Done(output);
    return output;
  }
  absl::Status Finish(uint64_t seq_id, SequenceStatus reason) {
    absl::StatusOr<std::unique_ptr<Sequence>> seq = scheduler_.Finish(seq_id, reason);
    scheduler_.CheckInvariants();
    if (!seq.ok()) return seq.status();
    finished_.push_back(*std::move(seq));
    return absl::OkStatus();
  }
  Scheduler& scheduler() { return scheduler_; }
  const BlockManager& blocks() const { return scheduler_.block_manager(); }
  // Finished sequences, in the order they finished.
  const std::vector<std::unique_ptr<Sequence>>& finished() const { return finished_; }

 private:
  Scheduler scheduler_;
  int32_t next_token_ = 500000;
  std::vector<std::unique_ptr<Sequence>> finished_;
};

}  // namespace pagedllm::coordinator::testing
