#include "coordinator/scheduler/scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "common/check.h"

namespace pagedllm::coordinator {

const char* PreemptionModeName(PreemptionMode mode) {
  switch (mode) {
    case PreemptionMode::kAuto:
      return "auto";
    case PreemptionMode::kSwap:
      return "swap";
    case PreemptionMode::kRecompute:
      return "recompute";
  }
  return "?";
}

absl::StatusOr<PreemptionMode> ParsePreemptionMode(const std::string& name) {
  if (name == "auto") return PreemptionMode::kAuto;
  if (name == "swap") return PreemptionMode::kSwap;
  if (name == "recompute") return PreemptionMode::kRecompute;
  return absl::InvalidArgumentError(
      absl::StrCat("--preemption_mode must be auto, swap or recompute, got \"", name, "\""));
}

namespace {

bool ArrivedBefore(const SequenceGroup* a, const SequenceGroup* b) {
  return a->arrival_order < b->arrival_order;
}

std::vector<uint64_t> SeqIdsOf(const SequenceGroup& group) {
  std::vector<uint64_t> ids;
  ids.reserve(group.seqs.size());
  for (const Sequence* seq : group.seqs) ids.push_back(seq->seq_id);
  return ids;
}

}  // namespace

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

absl::Status Scheduler::ValidateNewGroup(const GroupSpec& spec) const {
  const int64_t num_prompt = static_cast<int64_t>(spec.prompt_token_ids.size());
  if (num_prompt <= 0) return absl::InvalidArgumentError("prompt is empty");
  if (spec.max_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens must be at least 1, got ", spec.max_tokens));
  }
  if (spec.num_samples < 1 || spec.num_samples > config_.max_num_seqs) {
    return absl::InvalidArgumentError(
        absl::StrCat(spec.beam_search ? "beam width" : "best_of", " is ", spec.num_samples,
                     ": it must be in [1, max_num_seqs = ", config_.max_num_seqs, "]"));
  }
  if (spec.beam_search && spec.num_samples > config_.max_num_batched_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("beam width ", spec.num_samples, " exceeds max_num_batched_tokens ",
                     config_.max_num_batched_tokens, ": the beams of a step must run together"));
  }
  if (num_prompt > config_.max_model_len) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt has ", num_prompt, " tokens, max_model_len is ", config_.max_model_len));
  }
  const int64_t total = num_prompt + spec.max_tokens;
  if (total > config_.max_model_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt has ", num_prompt, " tokens and max_tokens is ", spec.max_tokens, ": ",
                     total, " tokens exceed max_model_len ", config_.max_model_len));
  }
  // The group at its largest, alone in the pool: the shared prompt, then every further sample
  // its own copy of the last prompt block and its own generated blocks.
  const int64_t per_extra_sample = block_manager_.NumBlocksForTokens(spec.max_tokens) + 1;
  const int64_t blocks =
      block_manager_.NumBlocksForTokens(total) + (spec.num_samples - 1) * per_extra_sample;
  const int64_t usable = block_manager_.num_total_blocks() - block_manager_.watermark_blocks();
  if (blocks > usable) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt has ", num_prompt, " tokens and max_tokens is ", spec.max_tokens,
        spec.num_samples > 1 ? absl::StrCat(" for ", spec.num_samples, " sequences") : "",
        ": that needs up to ", blocks, " blocks of ", block_manager_.block_size(),
        " tokens, but the KV cache has ", block_manager_.num_total_blocks(), " blocks (",
        block_manager_.watermark_blocks(), " kept free as watermark)"));
  }
  return absl::OkStatus();
}

Sequence* Scheduler::NewSequenceOf(SequenceGroup* group, std::vector<int32_t> tokens,
                                   int sample_index, const SamplingParams& base) {
  SamplingParams sampling = base;
  sampling.seed = base.seed + static_cast<uint64_t>(sample_index);
  const int num_prompt = static_cast<int>(tokens.size());
  auto seq =
      std::make_unique<Sequence>(next_seq_id_++, group, std::move(tokens), num_prompt, sampling);
  seq->sample_index = sample_index;
  Sequence* raw = seq.get();
  sequences_.emplace(raw->seq_id, std::move(seq));
  group->seqs.push_back(raw);
  return raw;
}

absl::StatusOr<uint64_t> Scheduler::AddGroup(GroupSpec spec) {
  const absl::Status valid = ValidateNewGroup(spec);
  if (!valid.ok()) return valid;
  if (static_cast<int>(waiting_.size()) >= config_.max_waiting) {
    return absl::ResourceExhaustedError(
        absl::StrCat("waiting queue is full (", config_.max_waiting, " requests)"));
  }
  auto group = std::make_unique<SequenceGroup>();
  group->group_id = next_group_id_++;
  group->request_id = std::move(spec.request_id);
  group->arrival_order = next_arrival_order_++;
  group->max_tokens = spec.max_tokens;
  group->num_samples = spec.num_samples;
  group->beam_search = spec.beam_search;
  const int num_prompt = static_cast<int>(spec.prompt_token_ids.size());
  if (!spec.beam_search && spec.num_samples > 1 && num_prompt > 1) {
    group->fork_at = num_prompt - 1;  // one sequence computes the shared prompt, then forks
    NewSequenceOf(group.get(), std::move(spec.prompt_token_ids), 0, spec.sampling);
  } else {
    // A one-token prompt shares nothing: its samples start apart.
    const int count = spec.beam_search ? 1 : spec.num_samples;
    for (int i = 0; i < count; ++i) {
      NewSequenceOf(group.get(), spec.prompt_token_ids, i, spec.sampling);
    }
  }
  const uint64_t group_id = group->group_id;
  waiting_.push_back(group.get());
  groups_.emplace(group_id, std::move(group));
  return group_id;
}

Scheduler::Plan Scheduler::PlanRunningGroup(const SequenceGroup& group, int budget) const {
  Plan plan;
  int total = 0;
  for (Sequence* seq : group.seqs) {
    const int uncomputed = seq->num_uncomputed_tokens();
    if (uncomputed <= 0) continue;
    // Its step ran ahead with its last token: it is done, once the caller sees that token.
    if (seq->num_generated_tokens() >= group.max_tokens &&
        seq->token_ids.back() == kPendingTokenId) {
      continue;
    }
    const int count = std::min(uncomputed, budget - total);
    if (count <= 0) break;
    plan.push_back({seq, count});
    total += count;
  }
  if (group.beam_search && group.seqs.size() > 1) {
    // Beams sample together or not at all.
    for (const PlannedSequence& p : plan) {
      if (p.num_tokens < p.seq->num_uncomputed_tokens()) return {};
    }
    int scheduled = 0;
    for (const Sequence* seq : group.seqs) scheduled += seq->num_uncomputed_tokens() > 0;
    if (scheduled != static_cast<int>(plan.size())) return {};
  }
  return plan;
}

Scheduler::SlotRequests Scheduler::SlotRequestsOf(const Plan& plan) const {
  SlotRequests requests;
  requests.reserve(plan.size());
  for (const PlannedSequence& p : plan) {
    requests.push_back({p.seq->seq_id, p.seq->num_computed_tokens, p.num_tokens});
  }
  return requests;
}

void Scheduler::CommitPlan(const Plan& plan, SchedulerOutput* output) {
  if (!plan.empty()) {
    const SequenceGroup& group = *plan.front().seq->group;
    output->next_needs_tokens |= group.beam_search || group.fork_at >= 0;
  }
  for (const PlannedSequence& p : plan) {
    Sequence* seq = p.seq;
    ScheduledSequence scheduled;
    scheduled.seq_id = seq->seq_id;
    scheduled.begin = seq->num_computed_tokens;
    scheduled.end = scheduled.begin + p.num_tokens;
    scheduled.token_ids.assign(seq->token_ids.begin() + scheduled.begin,
                               seq->token_ids.begin() + scheduled.end);
    scheduled.sample = scheduled.end == seq->num_tokens();
    PAGEDLLM_CHECK_OK(block_manager_.AllocateSlots(seq->seq_id, scheduled.begin, p.num_tokens,
                                                   &scheduled.new_block_ids,
                                                   &scheduled.replacements, &output->block_copies));
    if (seq->needs_table_reset) {
      scheduled.reset_block_table = true;
      scheduled.new_block_ids = block_manager_.table(seq->seq_id);
      scheduled.replacements.clear();
      seq->needs_table_reset = false;
    }
    if (!seq->known_to_workers) {
      output->new_sequences.push_back({seq->seq_id, seq->sampling});
      seq->known_to_workers = true;
    }
    output->num_scheduled_tokens += p.num_tokens;
    output->scheduled.push_back(std::move(scheduled));
  }
}

void Scheduler::InsertRunning(SequenceGroup* group) {
  group->status = GroupStatus::kRunning;
  for (Sequence* seq : group->seqs) seq->status = SequenceStatus::kRunning;
  running_.insert(std::upper_bound(running_.begin(), running_.end(), group, ArrivedBefore), group);
  num_running_width_ += group->max_seqs();
}

void Scheduler::PreemptGroup(SequenceGroup* group, SchedulerOutput* output) {
  running_.erase(std::find(running_.begin(), running_.end(), group));
  num_running_width_ -= group->max_seqs();
  ++group->num_preemptions;
  const std::vector<uint64_t> ids = SeqIdsOf(*group);
  const bool want_swap =
      config_.preemption_mode == PreemptionMode::kSwap ||
      (config_.preemption_mode == PreemptionMode::kAuto && group->seqs.size() > 1);
  const int32_t to_move = block_manager_.NumBlocksToSwapOut(ids);
  // A group holding no blocks has nothing to swap: it waits to be computed like a new one.
  const bool swap = want_swap && to_move > 0 && to_move <= block_manager_.num_free_host_blocks();
  for (Sequence* seq : group->seqs) {
    ++seq->num_preemptions;
    ++counters_.num_preemptions;
    if (seq->known_to_workers) output->preempted_seq_ids.push_back(seq->seq_id);
    seq->needs_table_reset = true;
    seq->num_registered_blocks = 0;  // its blocks come back (if at all) as fresh ones
  }
  if (swap) {
    PAGEDLLM_CHECK_OK(block_manager_.SwapOut(ids, &output->swap_out));
    group->status = GroupStatus::kSwapped;
    for (Sequence* seq : group->seqs) seq->status = SequenceStatus::kSwapped;
    counters_.num_swapped_out += static_cast<int64_t>(ids.size());
    swapped_.insert(std::upper_bound(swapped_.begin(), swapped_.end(), group, ArrivedBefore),
                    group);
    return;
  }
  for (Sequence* seq : group->seqs) {
    block_manager_.Free(seq->seq_id);
    seq->num_computed_tokens = 0;
    seq->status = SequenceStatus::kPreempted;
  }
  group->status = GroupStatus::kWaiting;
  // Ahead of every group that arrived after it (a group recomputed earlier may be older).
  waiting_.insert(std::upper_bound(waiting_.begin(), waiting_.end(), group, ArrivedBefore), group);
}

// In whichever queue the group is: FinishGroup takes it out of the one its status names.
void Scheduler::FailGroup(SequenceGroup* group, absl::Status status, SchedulerOutput* output) {
  output->failed_groups.emplace_back(group->group_id, std::move(status));
  PAGEDLLM_CHECK_OK(FinishGroup(group->group_id, SequenceStatus::kFinishedAborted));
  // The workers drop them with this very step.
  output->finished_seq_ids.insert(output->finished_seq_ids.end(), finished_since_last_step_.begin(),
                                  finished_since_last_step_.end());
  finished_since_last_step_.clear();
}

SchedulerOutput Scheduler::Schedule() {
  PAGEDLLM_CHECK(!step_in_flight_, "Schedule() before OnStepDone() of step ", last_step_id_);
  SchedulerOutput output;
  output.scheduled.reserve(num_running_width_);  // running sequences: at most their widths
  output.step_id = ++last_step_id_;
  output.finished_seq_ids.swap(finished_since_last_step_);
  output.forks.swap(pending_forks_);
  int budget = config_.max_num_batched_tokens;

  // 1. Running groups, oldest first. Preemption takes them from the back, so those already
  //    scheduled in this step are never preempted.
  for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
    SequenceGroup* group = running_[i];
    if (group->beam_search && group->seqs.size() > 1) {
      int needed_tokens = 0;
      for (const Sequence* seq : group->seqs) needed_tokens += seq->num_uncomputed_tokens();
      if (needed_tokens > config_.max_num_batched_tokens) {
        FailGroup(
            group,
            absl::ResourceExhaustedError(absl::StrCat(
                "beam search request \"", group->request_id, "\" must recompute ", needed_tokens,
                " tokens in one step after a preemption, more than "
                "max_num_batched_tokens ",
                config_.max_num_batched_tokens,
                "; give the server swap space (--swap_space_gib) or a larger budget")),
            &output);
        --i;
        continue;
      }
    }
    for (Sequence* seq : group->seqs) StartFromCache(seq, /*may_take_free_blocks=*/false);
    Plan plan = PlanRunningGroup(*group, budget);
    if (plan.empty()) continue;
    const SlotRequests requests = SlotRequestsOf(plan);
    bool preempted_self = false;
    while (!block_manager_.SlotsFit(requests)) {
      SequenceGroup* victim = running_.back();
      // Nothing newer left to preempt: run what fits of this group, if anything does.
      if (victim == group && TrimToFit(*group, block_manager_.num_free_blocks(), &plan)) break;
      if (victim == group) {
        if (running_.size() == 1 && swapped_.empty()) {
          // Alone with the whole pool and still short: it can never run.
          FailGroup(group,
                    absl::ResourceExhaustedError(absl::StrCat(
                        "request \"", group->request_id, "\" needs ",
                        block_manager_.NumBlocksNeeded(requests), " more KV blocks with all ",
                        block_manager_.num_total_blocks(), " of the pool to itself")),
                    &output);
        } else {
          PreemptGroup(group, &output);
        }
        preempted_self = true;
        break;
      }
      PreemptGroup(victim, &output);
    }
    if (preempted_self) break;
    const int before = output.num_scheduled_tokens;
    CommitPlan(plan, &output);
    budget -= output.num_scheduled_tokens - before;
  }

  // 2 and 3: no admissions after a preemption (they would only take the blocks just freed).
  const bool preempted = !output.preempted_seq_ids.empty() || !output.swap_out.empty();
  if (!preempted) ScheduleSwappedIn(&budget, &output);
  if (!preempted && swapped_.empty()) AdmitWaiting(&budget, &output);
  if (!output.has_work()) {
    --last_step_id_;
    output.step_id = 0;
  } else if (config_.measure_kv_usage) {
    MeasureKvUsage(output);
  }
  step_in_flight_ = true;
  return output;
}

void Scheduler::ScheduleSwappedIn(int* budget, SchedulerOutput* output) {
  while (!swapped_.empty() && *budget > 0) {
    SequenceGroup* group = swapped_.front();
    if (num_running_width_ + group->max_seqs() > config_.max_num_seqs) break;
    const std::vector<uint64_t> ids = SeqIdsOf(*group);
    const bool together = group->beam_search && group->seqs.size() > 1;
    int tokens = 0;
    for (const Sequence* seq : group->seqs) tokens += seq->num_uncomputed_tokens();
    if (together && tokens > config_.max_num_batched_tokens) {
      FailGroup(group,
                absl::ResourceExhaustedError(
                    absl::StrCat("beam search request \"", group->request_id, "\" must compute ",
                                 tokens, " tokens in one step, more than max_num_batched_tokens ",
                                 config_.max_num_batched_tokens)),
                output);
      continue;
    }
    if (together && tokens > *budget) break;
    // Its blocks back, and room for every sequence to take one more (a decode step, or a copy
    // of a shared last block); a longer chunk runs as far as the blocks allow.
    // Its blocks back, and: for beams (they run together) every beam's whole chunk and a copy
    // of a shared last block; for others one more block each (a chunk that needs more runs as
    // far as the blocks allow), or nothing more when nothing runs (it has the pool to itself).
    int64_t blocks = block_manager_.NumBlocksToSwapIn(ids);
    for (const Sequence* seq : group->seqs) {
      if (together) {
        blocks += block_manager_.NumBlocksForTokens(seq->compute_end()) -
                  block_manager_.NumBlocksForTokens(seq->num_computed_tokens) + 1;
      } else if (!running_.empty()) {
        blocks += 1;
      }
    }
    const int64_t reserve = running_.empty() ? 0 : block_manager_.watermark_blocks();
    if (block_manager_.num_free_blocks() - blocks < reserve) {
      if (!running_.empty()) break;
      FailGroup(group,
                absl::ResourceExhaustedError(
                    absl::StrCat("request \"", group->request_id, "\" needs ", blocks,
                                 " KV blocks to come back from swap space, more than the pool's ",
                                 block_manager_.num_free_blocks())),
                output);
      continue;
    }
    PAGEDLLM_CHECK_OK(block_manager_.SwapIn(ids, &output->swap_in));
    counters_.num_swapped_in += static_cast<int64_t>(ids.size());
    swapped_.erase(swapped_.begin());
    InsertRunning(group);
    Plan plan = PlanRunningGroup(*group, *budget);
    TrimToFit(*group, block_manager_.num_free_blocks(), &plan);
    const int before = output->num_scheduled_tokens;
    CommitPlan(plan, output);
    *budget -= output->num_scheduled_tokens - before;
  }
}

BlockManager::CachedPrefix Scheduler::FindCachedPrefix(Sequence* seq) {
  if (!config_.enable_prefix_caching) return {};
  UpdateBlockHashes(seq);
  // At least the last token is computed (its logits are needed), and a group that will fork
  // computes at least one prompt token before it does.
  const int max_blocks = (seq->compute_end() - 1) / block_manager_.block_size();
  return block_manager_.FindCachedPrefix(seq->block_hashes, max_blocks);
}

void Scheduler::StartFromCache(Sequence* seq, bool may_take_free_blocks) {
  // Cheapest test first: this runs for every running sequence every step.
  if (!config_.enable_prefix_caching || seq->num_computed_tokens != 0 ||
      block_manager_.HasTable(seq->seq_id)) {
    return;
  }
  const BlockManager::CachedPrefix prefix = FindCachedPrefix(seq);
  if (prefix.num_evictable > 0 && !may_take_free_blocks) return;
  block_manager_.TakeCachedPrefix(seq->seq_id, seq->block_hashes, prefix.num_blocks);
  seq->num_computed_tokens = prefix.num_blocks * block_manager_.block_size();
  seq->num_registered_blocks = prefix.num_blocks;
  counters_.num_prefix_cache_queries += seq->compute_end();
  counters_.num_prefix_cache_hit_tokens += seq->num_computed_tokens;
}

bool Scheduler::TrimToFit(const SequenceGroup& group, int32_t free_blocks, Plan* plan) const {
  if (group.beam_search && group.seqs.size() > 1) return false;  // beams run together
  Plan kept;
  for (const PlannedSequence& p : *plan) {
    kept.push_back(p);
    if (block_manager_.NumBlocksNeeded(SlotRequestsOf(kept)) > free_blocks) kept.pop_back();
  }
  *plan = std::move(kept);
  return !plan->empty();
}

void Scheduler::AdmitWaiting(int* budget, SchedulerOutput* output) {
  const int32_t block_size = block_manager_.block_size();
  const int32_t usable = block_manager_.num_total_blocks() - block_manager_.watermark_blocks();
  while (!waiting_.empty() && *budget > 0) {
    SequenceGroup* group = waiting_.front();
    if (num_running_width_ + group->max_seqs() > config_.max_num_seqs) break;
    // FCFS admission: the head's first sequence (or, for beams that must run together, every
    // sequence) must find its first chunk's blocks above the watermark.
    const bool together = group->beam_search && group->seqs.size() > 1;
    int64_t blocks_needed = 0;
    int remaining = *budget;
    for (Sequence* seq : group->seqs) {
      const BlockManager::CachedPrefix prefix = FindCachedPrefix(seq);
      const int cached_tokens = prefix.num_blocks * block_size;
      const int count = std::max(0, std::min(seq->compute_end() - cached_tokens, remaining));
      remaining -= count;
      blocks_needed +=
          prefix.num_evictable + block_manager_.NumBlocksForTokens(cached_tokens + count) -
          prefix.num_blocks + (together ? 1 : 0);  // beams may copy a shared last block
      if (!together) break;
    }
    if (together && blocks_needed > usable) {
      FailGroup(group,
                absl::ResourceExhaustedError(absl::StrCat(
                    "beam search request \"", group->request_id, "\" must recompute its ",
                    group->seqs.size(), " beams together after a preemption and they need ",
                    blocks_needed, " KV blocks, more than the pool's ", usable,
                    "; give the server swap space (--swap_space_gib)")),
                output);
      continue;
    }
    if (block_manager_.num_free_blocks() - blocks_needed < block_manager_.watermark_blocks()) {
      break;
    }
    waiting_.pop_front();
    InsertRunning(group);
    for (size_t s = 0; s < group->seqs.size(); ++s) {
      // The head was checked with its free cached blocks; the others take cached blocks only
      // when no one else would lose them.
      StartFromCache(group->seqs[s], /*may_take_free_blocks=*/s == 0 || together);
    }
    Plan plan = PlanRunningGroup(*group, *budget);
    TrimToFit(*group, block_manager_.num_free_blocks(), &plan);
    const int before = output->num_scheduled_tokens;
    CommitPlan(plan, output);
    *budget -= output->num_scheduled_tokens - before;
  }
}

void Scheduler::MeasureKvUsage(const SchedulerOutput& output) {
  const int32_t block_size = block_manager_.block_size();
  absl::flat_hash_map<uint64_t, int> end_of;  // tokens each scheduled sequence holds after it
  for (const ScheduledSequence& scheduled : output.scheduled)
    end_of[scheduled.seq_id] = scheduled.end;
  absl::flat_hash_map<int32_t, int> filled;  // block -> slots holding a token
  for (const SequenceGroup* group : running_) {
    for (const Sequence* seq : group->seqs) {
      if (!block_manager_.HasTable(seq->seq_id)) continue;
      auto it = end_of.find(seq->seq_id);
      const int tokens = it == end_of.end() ? seq->num_computed_tokens : it->second;
      const std::vector<int32_t>& table = block_manager_.table(seq->seq_id);
      for (size_t i = 0; i < table.size(); ++i) {
        const int in_block = std::clamp(tokens - static_cast<int>(i) * block_size, 0, block_size);
        int& slots = filled[table[i]];
        slots = std::max(slots, in_block);
      }
    }
  }
  int64_t filled_slots = 0;
  for (const auto& [block, slots] : filled) filled_slots += slots;
  const int64_t in_use = block_manager_.num_total_blocks() - block_manager_.num_free_blocks();
  ++counters_.num_kv_samples;
  counters_.kv_slots_allocated_sum += in_use * block_size;
  counters_.kv_slots_filled_sum += filled_slots;
}

void Scheduler::UpdateBlockHashes(Sequence* seq) {
  const int32_t block_size = block_manager_.block_size();
  const size_t full_blocks = static_cast<size_t>(seq->num_tokens() / block_size);
  while (seq->block_hashes.size() < full_blocks) {
    const size_t i = seq->block_hashes.size();
    const uint64_t parent = i == 0 ? 0 : seq->block_hashes[i - 1];
    seq->block_hashes.push_back(absl::HashOf(
        parent, absl::MakeConstSpan(seq->token_ids.data() + i * block_size, block_size)));
  }
}

void Scheduler::RegisterComputedBlocks(Sequence* seq) {
  const int full_computed = seq->num_computed_tokens / block_manager_.block_size();
  int& registered = seq->num_registered_blocks;
  if (registered >= full_computed) return;
  UpdateBlockHashes(seq);
  for (; registered < full_computed; ++registered) {
    block_manager_.RegisterBlock(seq->seq_id, registered, seq->block_hashes[registered]);
  }
}

bool Scheduler::CanRunAhead(const SchedulerOutput& output) const {
  return output.step_id != 0 && ahead_step_id_ == 0 && !output.next_needs_tokens;
}

void Scheduler::RunAhead(const SchedulerOutput& output) {
  PAGEDLLM_CHECK(step_in_flight_ && output.step_id != 0 && output.step_id == last_step_id_ &&
                     CanRunAhead(output),
                 "RunAhead of step ", output.step_id, " (last scheduled ", last_step_id_,
                 ", step ahead ", ahead_step_id_, ")");
  for (const ScheduledSequence& scheduled : output.scheduled) {
    Sequence* seq = GetSequence(scheduled.seq_id);
    if (seq == nullptr) continue;  // finished since Schedule()
    seq->num_computed_tokens = scheduled.end;
    if (scheduled.sample) AppendTokenTo(seq, kPendingTokenId);
  }
  ahead_step_id_ = output.step_id;
  step_in_flight_ = false;
}

void Scheduler::ResolveAhead(const SchedulerOutput& output,
                             const absl::flat_hash_map<uint64_t, int32_t>& sampled) {
  for (const ScheduledSequence& scheduled : output.scheduled) {
    Sequence* seq = GetSequence(scheduled.seq_id);
    if (seq == nullptr) continue;  // finished while the step ran
    if (scheduled.sample) {
      auto token = sampled.find(seq->seq_id);
      PAGEDLLM_CHECK(token != sampled.end() && scheduled.end < seq->num_tokens() &&
                         seq->token_ids[scheduled.end] == kPendingTokenId,
                     "step ", output.step_id, " ran ahead but sequence ", seq->seq_id,
                     " has no token for its placeholder at ", scheduled.end);
      seq->token_ids[scheduled.end] = token->second;
    }
    // A sequence preempted meanwhile holds no blocks to offer (or holds them on the host).
    if (config_.enable_prefix_caching && seq->status == SequenceStatus::kRunning) {
      RegisterComputedBlocks(seq);
    }
  }
  ahead_step_id_ = 0;
}

void Scheduler::OnStepDone(const SchedulerOutput& output,
                           const absl::flat_hash_map<uint64_t, int32_t>& sampled) {
  if (output.step_id != 0 && output.step_id == ahead_step_id_) {
    ResolveAhead(output, sampled);
    return;
  }
  PAGEDLLM_CHECK(ahead_step_id_ == 0 || output.step_id == 0, "OnStepDone of step ", output.step_id,
                 " before that of step ", ahead_step_id_, ", which ran ahead");
  PAGEDLLM_CHECK(step_in_flight_ && (output.step_id == 0 || output.step_id == last_step_id_),
                 "OnStepDone of step ", output.step_id, " but the step in flight is ",
                 step_in_flight_ ? absl::StrCat(last_step_id_) : "none");
  std::vector<SequenceGroup*> may_fork;
  for (const ScheduledSequence& scheduled : output.scheduled) {
    Sequence* seq = GetSequence(scheduled.seq_id);
    if (seq == nullptr) continue;  // finished while the step ran
    PAGEDLLM_CHECK(
        seq->status == SequenceStatus::kRunning && seq->num_computed_tokens == scheduled.begin,
        "sequence ", seq->seq_id, " is ", SequenceStatusName(seq->status), " with ",
        seq->num_computed_tokens, " computed tokens; step ", output.step_id, " computed [",
        scheduled.begin, ", ", scheduled.end, ")");
    seq->num_computed_tokens = scheduled.end;
    if (config_.enable_prefix_caching) RegisterComputedBlocks(seq);
    if (seq->group->fork_at >= 0 && seq->num_computed_tokens == seq->group->fork_at) {
      may_fork.push_back(seq->group);
    }
    if (!scheduled.sample) continue;
    auto token = sampled.find(seq->seq_id);
    if (token == sampled.end()) continue;  // the caller appends it (beam search)
    AppendTokenTo(seq, token->second);
  }
  for (SequenceGroup* group : may_fork) ForkSamples(group);
  step_in_flight_ = false;
}

void Scheduler::ForkSamples(SequenceGroup* group) {
  PAGEDLLM_CHECK(group->seqs.size() == 1, "group ", group->group_id, " forks with ",
                 group->seqs.size(), " sequences");
  group->fork_at = -1;
  Sequence* parent = group->seqs[0];
  for (int i = 1; i < group->num_samples; ++i) ForkSequence(parent->seq_id, i);
}

uint64_t Scheduler::ForkSequence(uint64_t parent_seq_id, int sample_index) {
  Sequence* parent = GetSequence(parent_seq_id);
  PAGEDLLM_CHECK(parent != nullptr && parent->status == SequenceStatus::kRunning,
                 "ForkSequence of sequence ", parent_seq_id, ", which is not running");
  SequenceGroup* group = parent->group;
  auto child = std::make_unique<Sequence>(next_seq_id_++, group, parent->token_ids,
                                          parent->num_prompt_tokens, parent->sampling);
  if (sample_index >= 0) {
    // Sample i of the group draws with the group's seed + i.
    child->sample_index = sample_index;
    child->sampling.seed = parent->sampling.seed - static_cast<uint64_t>(parent->sample_index) +
                           static_cast<uint64_t>(sample_index);
  } else {
    child->sample_index = parent->sample_index;
  }
  child->num_computed_tokens = parent->num_computed_tokens;
  child->status = parent->status;
  child->block_hashes = parent->block_hashes;
  child->num_registered_blocks = parent->num_registered_blocks;
  if (block_manager_.HasTable(parent_seq_id)) block_manager_.Fork(parent_seq_id, child->seq_id);
  if (parent->known_to_workers && !parent->needs_table_reset &&
      block_manager_.HasTable(parent_seq_id)) {
    // The workers copy the parent's table as the last step left it.
    pending_forks_.push_back({parent_seq_id, child->seq_id, child->sampling});
    child->known_to_workers = true;
    child->needs_table_reset = false;
  }
  Sequence* raw = child.get();
  sequences_.emplace(raw->seq_id, std::move(child));
  group->seqs.push_back(raw);
  return raw->seq_id;
}

void Scheduler::AppendToken(uint64_t seq_id, int32_t token_id) {
  Sequence* seq = GetSequence(seq_id);
  PAGEDLLM_CHECK(seq != nullptr, "AppendToken to unknown sequence ", seq_id);
  AppendTokenTo(seq, token_id);
}

void Scheduler::AppendTokenTo(Sequence* seq, int32_t token_id) {
  const uint64_t seq_id = seq->seq_id;
  PAGEDLLM_CHECK(seq->num_computed_tokens == seq->num_tokens(), "AppendToken to sequence ", seq_id,
                 " with ", seq->num_computed_tokens, " of ", seq->num_tokens(), " tokens computed");
  PAGEDLLM_CHECK(seq->num_generated_tokens() < seq->group->max_tokens, "sequence ", seq_id,
                 " already has max_tokens = ", seq->group->max_tokens,
                 " generated tokens; the caller should have finished it");
  seq->token_ids.push_back(token_id);
}

void Scheduler::RemoveFromQueue(SequenceGroup* group) {
  switch (group->status) {
    case GroupStatus::kRunning:
      running_.erase(std::find(running_.begin(), running_.end(), group));
      num_running_width_ -= group->max_seqs();
      break;
    case GroupStatus::kSwapped:
      swapped_.erase(std::find(swapped_.begin(), swapped_.end(), group));
      break;
    case GroupStatus::kWaiting:
      waiting_.erase(std::find(waiting_.begin(), waiting_.end(), group));
      break;
  }
}

absl::StatusOr<std::unique_ptr<Sequence>> Scheduler::FinishSequence(uint64_t seq_id,
                                                                    SequenceStatus reason) {
  PAGEDLLM_CHECK(IsFinished(reason), "Finish with status ", SequenceStatusName(reason));
  auto it = sequences_.find(seq_id);
  if (it == sequences_.end()) {
    return absl::NotFoundError(absl::StrCat("sequence ", seq_id, " is not in the scheduler"));
  }
  Sequence* seq = it->second.get();
  SequenceGroup* group = seq->group;
  group->seqs.erase(std::find(group->seqs.begin(), group->seqs.end(), seq));
  block_manager_.Free(seq_id);
  if (seq->known_to_workers) finished_since_last_step_.push_back(seq_id);
  std::unique_ptr<Sequence> owned = std::move(it->second);
  sequences_.erase(it);
  owned->status = reason;
  owned->group = nullptr;
  if (group->seqs.empty()) {
    RemoveFromQueue(group);
    groups_.erase(group->group_id);
  }
  return owned;
}

absl::Status Scheduler::FinishGroup(uint64_t group_id, SequenceStatus reason) {
  SequenceGroup* group = GetGroup(group_id);
  if (group == nullptr) {
    return absl::NotFoundError(absl::StrCat("group ", group_id, " is not in the scheduler"));
  }
  const std::vector<uint64_t> ids = SeqIdsOf(*group);
  for (uint64_t id : ids) FinishSequence(id, reason).IgnoreError();
  return absl::OkStatus();
}

Sequence* Scheduler::GetSequence(uint64_t seq_id) const {
  auto it = sequences_.find(seq_id);
  return it == sequences_.end() ? nullptr : it->second.get();
}

SequenceGroup* Scheduler::GetGroup(uint64_t group_id) const {
  auto it = groups_.find(group_id);
  return it == groups_.end() ? nullptr : it->second.get();
}

int Scheduler::num_running() const {
  int n = 0;
  for (const SequenceGroup* group : running_) n += static_cast<int>(group->seqs.size());
  return n;
}

int Scheduler::num_swapped() const {
  int n = 0;
  for (const SequenceGroup* group : swapped_) n += static_cast<int>(group->seqs.size());
  return n;
}

int Scheduler::num_waiting() const {
  int n = 0;
  for (const SequenceGroup* group : waiting_) n += static_cast<int>(group->seqs.size());
  return n;
}

void Scheduler::CheckInvariants() const {
  block_manager_.CheckInvariants();
  PAGEDLLM_CHECK(running_.size() + swapped_.size() + waiting_.size() == groups_.size(),
                 running_.size(), " running + ", swapped_.size(), " swapped + ", waiting_.size(),
                 " waiting groups != ", groups_.size(), " groups");
  int width = 0;
  for (const SequenceGroup* group : running_) width += group->max_seqs();
  PAGEDLLM_CHECK(width == num_running_width_ && width <= config_.max_num_seqs, "running width ",
                 width, " (counted ", num_running_width_, "), max_num_seqs is ",
                 config_.max_num_seqs);
  const int32_t block_size = block_manager_.block_size();
  size_t num_seqs = 0;
  int device_tables = 0;
  int swapped_tables = 0;
  auto check_list = [&](const auto& list, GroupStatus status) {
    const SequenceGroup* previous = nullptr;
    for (const SequenceGroup* group : list) {
      PAGEDLLM_CHECK(GetGroup(group->group_id) == group, "group ", group->group_id,
                     " is queued but not owned");
      PAGEDLLM_CHECK(group->status == status, "group ", group->group_id, " has the wrong status");
      PAGEDLLM_CHECK(!group->seqs.empty(), "group ", group->group_id, " has no sequences");
      PAGEDLLM_CHECK(previous == nullptr || previous->arrival_order < group->arrival_order,
                     "group ", group->group_id, " (arrival ", group->arrival_order,
                     ") is queued after group ", previous->group_id);
      previous = group;
      for (const Sequence* seq : group->seqs) {
        ++num_seqs;
        PAGEDLLM_CHECK(GetSequence(seq->seq_id) == seq && seq->group == group, "sequence ",
                       seq->seq_id, " is not owned by group ", group->group_id);
        PAGEDLLM_CHECK(
            seq->num_generated_tokens() >= 0 && seq->num_generated_tokens() <= group->max_tokens,
            "sequence ", seq->seq_id, " has ", seq->num_generated_tokens(),
            " generated tokens, max_tokens ", group->max_tokens);
        PAGEDLLM_CHECK(
            seq->num_computed_tokens >= 0 && seq->num_computed_tokens <= seq->compute_end(),
            "sequence ", seq->seq_id, " has ", seq->num_computed_tokens,
            " computed tokens, computing ends at ", seq->compute_end());
        PAGEDLLM_CHECK(ahead_step_id_ != 0 || seq->token_ids.empty() ||
                           seq->token_ids.back() != kPendingTokenId,
                       "sequence ", seq->seq_id, " awaits a token, but no step is ahead");
        const bool has_table = block_manager_.HasTable(seq->seq_id);
        device_tables += has_table;
        swapped_tables += block_manager_.IsSwapped(seq->seq_id);
        switch (status) {
          case GroupStatus::kWaiting:
            PAGEDLLM_CHECK(seq->status == SequenceStatus::kWaiting ||
                               seq->status == SequenceStatus::kPreempted,
                           "waiting sequence ", seq->seq_id, " has status ",
                           SequenceStatusName(seq->status));
            PAGEDLLM_CHECK(!has_table && !block_manager_.IsSwapped(seq->seq_id) &&
                               seq->num_computed_tokens == 0,
                           "waiting sequence ", seq->seq_id, " holds blocks or computed tokens");
            break;
          case GroupStatus::kSwapped:
            PAGEDLLM_CHECK(seq->status == SequenceStatus::kSwapped && !has_table,
                           "swapped sequence ", seq->seq_id, " has status ",
                           SequenceStatusName(seq->status), " or device blocks");
            break;
          case GroupStatus::kRunning: {
            PAGEDLLM_CHECK(seq->status == SequenceStatus::kRunning, "running sequence ",
                           seq->seq_id, " has status ", SequenceStatusName(seq->status));
            const int64_t num_blocks =
                has_table ? static_cast<int64_t>(block_manager_.table(seq->seq_id).size()) : 0;
            const int64_t computed_blocks =
                (seq->num_computed_tokens + block_size - 1) / block_size;
            const int64_t max_blocks = step_in_flight_
                                           ? (seq->num_tokens() + block_size - 1) / block_size
                                           : computed_blocks;
            PAGEDLLM_CHECK(num_blocks >= computed_blocks && num_blocks <= max_blocks, "sequence ",
                           seq->seq_id, " holds ", num_blocks, " blocks for ",
                           seq->num_computed_tokens, " computed of ", seq->num_tokens(),
                           " tokens (block size ", block_size,
                           step_in_flight_ ? ", step in flight)" : ")");
            break;
          }
        }
      }
    }
  };
  check_list(running_, GroupStatus::kRunning);
  check_list(swapped_, GroupStatus::kSwapped);
  check_list(waiting_, GroupStatus::kWaiting);
  PAGEDLLM_CHECK(num_seqs == sequences_.size(), num_seqs,
                 " queued sequences != ", sequences_.size(), " owned");
  PAGEDLLM_CHECK(block_manager_.num_tables() == device_tables, block_manager_.num_tables(),
                 " block tables, ", device_tables, " held by running sequences");
  PAGEDLLM_CHECK(block_manager_.num_swapped_tables() == swapped_tables,
                 block_manager_.num_swapped_tables(), " swapped tables, ", swapped_tables,
                 " held by swapped sequences");
}

}  // namespace pagedllm::coordinator
