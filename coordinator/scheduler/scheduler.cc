#include "coordinator/scheduler/scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace pagedllm::coordinator {

Scheduler::Scheduler(const SchedulerConfig& config)
    : config_(config), block_manager_(config.blocks) {
  PAGEDLLM_CHECK(config_.max_num_batched_tokens > 0,
                 "max_num_batched_tokens must be positive, got ", config_.max_num_batched_tokens);
  PAGEDLLM_CHECK(config_.max_num_seqs > 0, "max_num_seqs must be positive, got ",
                 config_.max_num_seqs);
  PAGEDLLM_CHECK(config_.max_model_len > 0, "max_model_len must be positive, got ",
                 config_.max_model_len);
  PAGEDLLM_CHECK(config_.max_waiting > 0, "max_waiting must be positive, got ",
                 config_.max_waiting);
}

absl::Status Scheduler::ValidateNewSequence(const Sequence& seq) const {
  const int64_t num_prompt = seq.num_prompt_tokens;
  if (num_prompt <= 0) return absl::InvalidArgumentError("prompt is empty");
  if (seq.num_tokens() != seq.num_prompt_tokens || seq.num_computed_tokens != 0 ||
      seq.status != SequenceStatus::kWaiting) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence ", seq.seq_id, " is not new: ", seq.num_tokens(), " tokens, ",
                     seq.num_prompt_tokens, " prompt tokens, ", seq.num_computed_tokens,
                     " computed, status ", SequenceStatusName(seq.status)));
  }
  if (seq.max_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens must be at least 1, got ", seq.max_tokens));
  }
  if (num_prompt > config_.max_model_len) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt has ", num_prompt, " tokens, max_model_len is ", config_.max_model_len));
  }
  const int64_t total = num_prompt + seq.max_tokens;
  if (total > config_.max_model_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt has ", num_prompt, " tokens and max_tokens is ", seq.max_tokens, ": ",
                     total, " tokens exceed max_model_len ", config_.max_model_len));
  }
  if (block_manager_.CanAllocate(total) == AllocationCheck::kNever) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt has ", num_prompt, " tokens and max_tokens is ", seq.max_tokens, ": ",
                     total, " tokens need ", block_manager_.NumBlocksForTokens(total),
                     " blocks of ", block_manager_.block_size(), " tokens, but the KV cache has ",
                     block_manager_.num_total_blocks(), " blocks (",
                     block_manager_.watermark_blocks(), " kept free as watermark)"));
  }
  if (sequences_.contains(seq.seq_id)) {
    return absl::AlreadyExistsError(absl::StrCat("sequence ", seq.seq_id, " already exists"));
  }
  return absl::OkStatus();
}

absl::Status Scheduler::AddSequence(std::unique_ptr<Sequence> seq) {
  PAGEDLLM_CHECK(seq != nullptr, "AddSequence(nullptr)");
  const absl::Status valid = ValidateNewSequence(*seq);
  if (!valid.ok()) return valid;
  if (num_waiting() >= config_.max_waiting) {
    return absl::ResourceExhaustedError(
        absl::StrCat("waiting queue is full (", config_.max_waiting, " sequences)"));
  }
  seq->arrival_order = next_arrival_order_++;
  waiting_.push_back(seq.get());
  const uint64_t seq_id = seq->seq_id;
  sequences_.emplace(seq_id, std::move(seq));
  return absl::OkStatus();
}

void Scheduler::PreemptNewestRunning(SchedulerOutput* output) {
  Sequence* victim = running_.back();
  running_.pop_back();
  block_manager_.Free(victim->seq_id);
  victim->num_computed_tokens = 0;
  victim->status = SequenceStatus::kPreempted;
  ++victim->num_preemptions;
  ++num_preemptions_;
  waiting_.push_front(victim);
  output->preempted_seq_ids.push_back(victim->seq_id);
}

SchedulerOutput Scheduler::Schedule() {
  PAGEDLLM_CHECK(!step_in_flight_, "Schedule() before OnStepDone() of step ", next_step_id_ - 1);
  SchedulerOutput output;
  output.step_id = next_step_id_++;
  output.finished_seq_ids.swap(finished_since_last_step_);
  int budget = config_.max_num_batched_tokens;

  // 1. Running sequences, oldest first. Preemption takes them from the back, so those
  //    already scheduled in this step are never preempted.
  for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
    Sequence* seq = running_[i];
    const int begin = seq->num_computed_tokens;
    const int count = std::min(seq->num_uncomputed_tokens(), budget);
    PAGEDLLM_CHECK(count > 0, "running sequence ", seq->seq_id, " has nothing to compute");
    ScheduledSequence scheduled;
    bool fits = false;
    while (true) {
      fits = block_manager_
                 .AllocateSlots(seq->seq_id, begin, count, &scheduled.new_block_ids,
                                &scheduled.replacements, &output.block_copies)
                 .ok();
      if (fits) break;
      const bool preempting_self = running_.back() == seq;
      PreemptNewestRunning(&output);
      if (preempting_self) break;
    }
    if (!fits) break;  // seq was the last running one
    scheduled.seq_id = seq->seq_id;
    scheduled.begin = begin;
    scheduled.end = begin + count;
    scheduled.sample = scheduled.end == seq->num_tokens();
    output.scheduled.push_back(std::move(scheduled));
    budget -= count;
  }

  // 2. Waiting sequences in arrival order; none after a preemption (they would only take
  //    the blocks just freed from a running sequence).
  while (output.preempted_seq_ids.empty() && !waiting_.empty() && budget > 0 &&
         num_running() < config_.max_num_seqs) {
    Sequence* seq = waiting_.front();
    const int count = std::min(seq->num_tokens(), budget);
    const int32_t needed = block_manager_.NumBlocksNeeded(seq->seq_id, 0, count);
    if (block_manager_.num_free_blocks() - needed < block_manager_.watermark_blocks()) break;
    ScheduledSequence scheduled;
    PAGEDLLM_CHECK_OK(block_manager_.AllocateSlots(seq->seq_id, 0, count, &scheduled.new_block_ids,
                                                   &scheduled.replacements, &output.block_copies));
    waiting_.pop_front();
    running_.push_back(seq);
    seq->status = SequenceStatus::kRunning;
    scheduled.seq_id = seq->seq_id;
    scheduled.begin = 0;
    scheduled.end = count;
    scheduled.sample = count == seq->num_tokens();
    scheduled.is_new = !seq->ever_scheduled;
    scheduled.reset_block_table = true;
    seq->ever_scheduled = true;
    output.scheduled.push_back(std::move(scheduled));
    budget -= count;
  }

  output.num_scheduled_tokens = config_.max_num_batched_tokens - budget;
  step_in_flight_ = true;
  return output;
}

void Scheduler::OnStepDone(const SchedulerOutput& output,
                           const absl::flat_hash_map<uint64_t, int32_t>& sampled) {
  PAGEDLLM_CHECK(step_in_flight_ && output.step_id + 1 == next_step_id_, "OnStepDone of step ",
                 output.step_id, " but the step in flight is ",
                 step_in_flight_ ? absl::StrCat(next_step_id_ - 1) : "none");
  for (const ScheduledSequence& scheduled : output.scheduled) {
    auto it = sequences_.find(scheduled.seq_id);
    if (it == sequences_.end()) continue;  // finished while the step ran
    Sequence* seq = it->second.get();
    PAGEDLLM_CHECK(
        seq->status == SequenceStatus::kRunning && seq->num_computed_tokens == scheduled.begin,
        "sequence ", seq->seq_id, " is ", SequenceStatusName(seq->status), " with ",
        seq->num_computed_tokens, " computed tokens; step ", output.step_id, " computed [",
        scheduled.begin, ", ", scheduled.end, ")");
    seq->num_computed_tokens = scheduled.end;
    if (!scheduled.sample) continue;
    auto token = sampled.find(seq->seq_id);
    PAGEDLLM_CHECK(token != sampled.end(), "no sampled token for sequence ", seq->seq_id,
                   " in step ", output.step_id);
    PAGEDLLM_CHECK(seq->num_generated_tokens() < seq->max_tokens, "sequence ", seq->seq_id,
                   " already has max_tokens = ", seq->max_tokens,
                   " generated tokens; the caller should have finished it");
    seq->token_ids.push_back(token->second);
  }
  step_in_flight_ = false;
}

absl::StatusOr<std::unique_ptr<Sequence>> Scheduler::Finish(uint64_t seq_id,
                                                            SequenceStatus reason) {
  PAGEDLLM_CHECK(IsFinished(reason), "Finish with status ", SequenceStatusName(reason));
  auto it = sequences_.find(seq_id);
  if (it == sequences_.end()) {
    return absl::NotFoundError(absl::StrCat("sequence ", seq_id, " is not in the scheduler"));
  }
  Sequence* seq = it->second.get();
  if (seq->status == SequenceStatus::kRunning) {
    running_.erase(std::find(running_.begin(), running_.end(), seq));
  } else {
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), seq));
  }
  block_manager_.Free(seq_id);
  if (seq->ever_scheduled) finished_since_last_step_.push_back(seq_id);
  std::unique_ptr<Sequence> owned = std::move(it->second);
  sequences_.erase(it);
  owned->status = reason;
  return owned;
}

Sequence* Scheduler::Get(uint64_t seq_id) const {
  auto it = sequences_.find(seq_id);
  return it == sequences_.end() ? nullptr : it->second.get();
}

void Scheduler::CheckInvariants() const {
  block_manager_.CheckInvariants();
  PAGEDLLM_CHECK(running_.size() + waiting_.size() == sequences_.size(), running_.size(),
                 " running + ", waiting_.size(), " waiting != ", sequences_.size(), " sequences");
  PAGEDLLM_CHECK(num_running() <= config_.max_num_seqs, num_running(),
                 " running sequences, max_num_seqs is ", config_.max_num_seqs);
  PAGEDLLM_CHECK(block_manager_.num_tables() == num_running(), block_manager_.num_tables(),
                 " block tables for ", num_running(), " running sequences");
  const int32_t block_size = block_manager_.block_size();
  const Sequence* previous = nullptr;
  auto check_order = [&previous](const Sequence* seq) {
    PAGEDLLM_CHECK(previous == nullptr || previous->arrival_order < seq->arrival_order, "sequence ",
                   seq->seq_id, " (arrival ", seq->arrival_order, ") is queued after sequence ",
                   previous->seq_id, " (arrival ", previous->arrival_order, ")");
    previous = seq;
  };
  auto check_common = [this](const Sequence* seq) {
    PAGEDLLM_CHECK(Get(seq->seq_id) == seq, "sequence ", seq->seq_id, " is queued but not owned");
    PAGEDLLM_CHECK(
        seq->num_generated_tokens() >= 0 && seq->num_generated_tokens() <= seq->max_tokens,
        "sequence ", seq->seq_id, " has ", seq->num_generated_tokens(),
        " generated tokens, max_tokens ", seq->max_tokens);
  };
  for (const Sequence* seq : running_) {
    check_order(seq);
    check_common(seq);
    PAGEDLLM_CHECK(seq->status == SequenceStatus::kRunning, "running sequence ", seq->seq_id,
                   " has status ", SequenceStatusName(seq->status));
    PAGEDLLM_CHECK(block_manager_.HasTable(seq->seq_id), "running sequence ", seq->seq_id,
                   " has no block table");
    const int64_t num_blocks = block_manager_.table(seq->seq_id).size();
    const int64_t computed_blocks = (seq->num_computed_tokens + block_size - 1) / block_size;
    const int64_t max_blocks =
        step_in_flight_ ? (seq->num_tokens() + block_size - 1) / block_size : computed_blocks;
    PAGEDLLM_CHECK(num_blocks >= computed_blocks && num_blocks <= max_blocks, "sequence ",
                   seq->seq_id, " holds ", num_blocks, " blocks for ", seq->num_computed_tokens,
                   " computed of ", seq->num_tokens(), " tokens (block size ", block_size,
                   step_in_flight_ ? ", step in flight)" : ")");
    PAGEDLLM_CHECK(seq->num_computed_tokens < seq->num_tokens(), "running sequence ", seq->seq_id,
                   " has all ", seq->num_tokens(), " tokens computed");
  }
  for (const Sequence* seq : waiting_) {
    check_order(seq);
    check_common(seq);
    PAGEDLLM_CHECK(
        seq->status == SequenceStatus::kWaiting || seq->status == SequenceStatus::kPreempted,
        "waiting sequence ", seq->seq_id, " has status ", SequenceStatusName(seq->status));
    PAGEDLLM_CHECK(!block_manager_.HasTable(seq->seq_id), "waiting sequence ", seq->seq_id,
                   " holds blocks");
    PAGEDLLM_CHECK(seq->num_computed_tokens == 0, "waiting sequence ", seq->seq_id, " has ",
                   seq->num_computed_tokens, " computed tokens");
  }
}

}  // namespace pagedllm::coordinator
