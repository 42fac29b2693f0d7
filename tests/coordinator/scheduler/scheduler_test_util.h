// Test helpers: a Scheduler driver that checks invariants after every mutation.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "coordinator/scheduler/scheduler.h"
#include "gtest/gtest.h"

namespace pagedllm::coordinator::testing {

// Prompt tokens key * 1000 + i, so that every request's tokens are recognizable.
inline std::vector<int32_t> MakePrompt(uint64_t key, int num_prompt_tokens) {
  std::vector<int32_t> prompt(num_prompt_tokens);
  for (int i = 0; i < num_prompt_tokens; ++i) prompt[i] = static_cast<int32_t>(key * 1000 + i);
  return prompt;
}

// A one-sample request "request-<key>" with MakePrompt(key, num_prompt_tokens).
inline GroupSpec MakeSpec(uint64_t key, int num_prompt_tokens, int max_tokens) {
  GroupSpec spec;
  spec.request_id = absl::StrCat("request-", key);
  spec.prompt_token_ids = MakePrompt(key, num_prompt_tokens);
  spec.max_tokens = max_tokens;
  return spec;
}

// Prefix caching is off: the tests that predate it check block ids and recomputation exactly;
// the prefix-caching tests turn it on.
inline SchedulerConfig TestConfig(int32_t num_blocks, int32_t block_size,
                                  int32_t max_num_batched_tokens = 2048,
                                  int32_t max_num_seqs = 256) {
  SchedulerConfig config;
  config.blocks.num_blocks = num_blocks;
  config.blocks.block_size = block_size;
  config.blocks.watermark = 0.0;
  config.max_num_batched_tokens = max_num_batched_tokens;
  config.max_num_seqs = max_num_seqs;
  config.enable_prefix_caching = false;
  return config;
}

inline const ScheduledSequence* FindScheduled(const SchedulerOutput& output, uint64_t seq_id) {
  for (const ScheduledSequence& s : output.scheduled) {
    if (s.seq_id == seq_id) return &s;
  }
  return nullptr;
}

// Drives a Scheduler the way the engine loop does: Schedule, OnStepDone with a fresh token for
// each sampling sequence (except beam-search ones: the test appends those itself), then
// FinishSequence (kFinishedLength) whoever reached max_tokens. Checks the scheduler's
// invariants after every call, and every output's step id (1, 2, 3, ... over the outputs with
// work, 0 for one without) and that no step swaps both ways.
//
// Tests name requests by a key of their own; Id(key) is the scheduler's id of the request's
// first sequence, Group(key) its group id.
class SchedulerDriver {
 public:
  explicit SchedulerDriver(const SchedulerConfig& config) : scheduler_(config) {
    scheduler_.CheckInvariants();
  }

  // A one-sample request (MakeSpec).
  absl::Status Add(uint64_t key, int num_prompt_tokens, int max_tokens) {
    return AddGroup(key, MakeSpec(key, num_prompt_tokens, max_tokens));
  }
  absl::Status AddGroup(uint64_t key, GroupSpec spec) {
    absl::StatusOr<uint64_t> group_id = scheduler_.AddGroup(std::move(spec));
    scheduler_.CheckInvariants();
    if (!group_id.ok()) return group_id.status();
    EXPECT_EQ(group_of_key_.count(key), 0u) << "key " << key << " added twice";
    group_of_key_[key] = *group_id;
    seq_of_key_[key] = scheduler_.GetGroup(*group_id)->seqs.front()->seq_id;
    return absl::OkStatus();
  }
  uint64_t Id(uint64_t key) const {
    auto it = seq_of_key_.find(key);
    EXPECT_TRUE(it != seq_of_key_.end()) << "no request with key " << key;
    return it == seq_of_key_.end() ? 0 : it->second;
  }
  uint64_t Group(uint64_t key) const {
    auto it = group_of_key_.find(key);
    EXPECT_TRUE(it != group_of_key_.end()) << "no request with key " << key;
    return it == group_of_key_.end() ? 0 : it->second;
  }
  const Sequence* Get(uint64_t key) const { return scheduler_.GetSequence(Id(key)); }

  SchedulerOutput Schedule() {
    SchedulerOutput output = scheduler_.Schedule();
    scheduler_.CheckInvariants();
    if (output.has_work()) {
      EXPECT_EQ(output.step_id, last_step_id_ + 1) << "step ids must have no gaps";
      last_step_id_ = output.step_id;
    } else {
      EXPECT_EQ(output.step_id, 0u) << "an output without work takes no step id";
    }
    EXPECT_TRUE(output.swap_out.empty() || output.swap_in.empty())
        << "step " << output.step_id << " swaps out and in";
    int tokens = 0;
    for (const ScheduledSequence& s : output.scheduled) {
      tokens += s.end - s.begin;
      EXPECT_EQ(static_cast<int>(s.token_ids.size()), s.end - s.begin);
    }
    EXPECT_EQ(output.num_scheduled_tokens, tokens);
    EXPECT_LE(tokens, scheduler_.config().max_num_batched_tokens);
    for (const auto& [group_id, status] : output.failed_groups)
      failed_.emplace_back(group_id, status);
    return output;
  }
  // A fresh token for every sampling sequence not of a beam search.
  void Done(const SchedulerOutput& output) {
    absl::flat_hash_map<uint64_t, int32_t> sampled;
    for (const ScheduledSequence& s : output.scheduled) {
      const Sequence* seq = scheduler_.GetSequence(s.seq_id);
      if (s.sample && (seq == nullptr || !seq->group->beam_search))
        sampled[s.seq_id] = next_token_++;
    }
    Done(output, sampled);
  }
  void Done(const SchedulerOutput& output, const absl::flat_hash_map<uint64_t, int32_t>& sampled) {
    scheduler_.OnStepDone(output, sampled);
    scheduler_.CheckInvariants();
    for (const ScheduledSequence& s : output.scheduled) {
      const Sequence* seq = scheduler_.GetSequence(s.seq_id);
      if (seq != nullptr && seq->num_generated_tokens() == seq->group->max_tokens) {
        EXPECT_TRUE(Finish(s.seq_id, SequenceStatus::kFinishedLength).ok());
      }
    }
  }
  SchedulerOutput Step() {
    SchedulerOutput output = Schedule();
    Done(output);
    return output;
  }
  // By the scheduler's sequence id.
  absl::Status Finish(uint64_t seq_id, SequenceStatus reason) {
    absl::StatusOr<std::unique_ptr<Sequence>> seq = scheduler_.FinishSequence(seq_id, reason);
    scheduler_.CheckInvariants();
    if (!seq.ok()) return seq.status();
    finished_.push_back(*std::move(seq));
    return absl::OkStatus();
  }
  uint64_t Fork(uint64_t seq_id) {
    const uint64_t child = scheduler_.ForkSequence(seq_id);
    scheduler_.CheckInvariants();
    return child;
  }
  void AppendToken(uint64_t seq_id, int32_t token) {
    scheduler_.AppendToken(seq_id, token);
    scheduler_.CheckInvariants();
  }

  Scheduler& scheduler() { return scheduler_; }
  const BlockManager& blocks() const { return scheduler_.block_manager(); }
  // Finished sequences, in the order they finished.
  const std::vector<std::unique_ptr<Sequence>>& finished() const { return finished_; }
  // Groups the scheduler failed (SchedulerOutput::failed_groups), over all steps.
  const std::vector<std::pair<uint64_t, absl::Status>>& failed() const { return failed_; }

 private:
  Scheduler scheduler_;
  int32_t next_token_ = 500000;
  uint64_t last_step_id_ = 0;
  std::map<uint64_t, uint64_t> group_of_key_;
  std::map<uint64_t, uint64_t> seq_of_key_;
  std::vector<std::unique_ptr<Sequence>> finished_;
  std::vector<std::pair<uint64_t, absl::Status>> failed_;
};

}  // namespace pagedllm::coordinator::testing
