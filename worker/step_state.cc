#include "worker/step_state.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/status.h"

namespace pagedllm::worker {

namespace wv1 = pagedllm::worker::v1;

namespace {

SamplingParams FromProto(const wv1::SamplingConfig& proto) {
  SamplingParams params;
  params.temperature = proto.temperature();
  params.top_p = proto.top_p();
  params.top_k = proto.top_k();
  params.min_p = proto.min_p();
  params.seed = proto.seed();
  params.num_top_logprobs = proto.num_top_logprobs();
  return params;
}

}  // namespace

absl::Status StepState::AddSequence(uint64_t seq_id, const wv1::SamplingConfig& sampling,
                                    SequenceMirror mirror) {
  if (sequences_.contains(seq_id)) {
    return absl::FailedPreconditionError(
        absl::StrCat("step ", last_step_id_, ": sequence ", seq_id, " is not new"));
  }
  mirror.sampling = FromProto(sampling);
  const absl::Status valid = ValidateSamplingParams(mirror.sampling, vocab_size_);
  if (!valid.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("step ", last_step_id_, ": sequence ", seq_id, ": ", valid.message()));
  }
  mirror.num_draws = 0;
  sequences_.emplace(seq_id, std::move(mirror));
  return absl::OkStatus();
}

absl::Status StepState::Apply(const wv1::StepInstruction& step, HostBatch* batch) {
  if (step.step_id() != last_step_id_ + 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("step ", step.step_id(), " does not follow step ", last_step_id_));
  }
  last_step_id_ = step.step_id();
  *batch = HostBatch();

  for (const wv1::SequenceFork& fork : step.forks()) {
    auto parent = sequences_.find(fork.parent_seq_id());
    if (parent == sequences_.end() || !parent->second.has_table) {
      return absl::FailedPreconditionError(absl::StrCat("step ", step.step_id(),
                                                        ": fork of sequence ", fork.parent_seq_id(),
                                                        ", which has no block table here"));
    }
    SequenceMirror child;
    child.block_table = parent->second.block_table;
    child.has_table = true;
    PAGEDLLM_RETURN_IF_ERROR(AddSequence(fork.child_seq_id(), fork.sampling(), std::move(child)));
  }
  for (uint64_t seq_id : step.finished_sequence_ids()) sequences_.erase(seq_id);
  for (uint64_t seq_id : step.preempted_sequence_ids()) {
    auto it = sequences_.find(seq_id);
    if (it == sequences_.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("step ", step.step_id(), ": preempted sequence ", seq_id, " is unknown"));
    }
    it->second.block_table.clear();
    it->second.has_table = false;
  }
  for (const wv1::BlockCopy& copy : step.block_copies()) {
    if (copy.src() < 0 || copy.src() >= num_blocks_ || copy.dst() < 0 ||
        copy.dst() >= num_blocks_) {
      return absl::InvalidArgumentError(absl::StrCat("block copy ", copy.src(), " -> ", copy.dst(),
                                                     " is outside [0, ", num_blocks_, ")"));
    }
    batch->block_copies.push_back(copy.src());
    batch->block_copies.push_back(copy.dst());
  }
  for (const wv1::NewSequence& new_seq : step.new_sequences()) {
    PAGEDLLM_RETURN_IF_ERROR(AddSequence(new_seq.seq_id(), new_seq.sampling(), SequenceMirror()));
  }

  batch->query_start.push_back(0);
  for (const wv1::SequenceStep& seq_step : step.sequences()) {
    PAGEDLLM_RETURN_IF_ERROR(ApplySequenceStep(seq_step, batch));
  }

  // Block tables as a dense [S, max_blocks] matrix.
  int32_t max_blocks = 1;
  for (const wv1::SequenceStep& seq_step : step.sequences()) {
    max_blocks = std::max<int32_t>(
        max_blocks, static_cast<int32_t>(sequences_[seq_step.seq_id()].block_table.size()));
  }
  batch->max_blocks_per_seq = max_blocks;
  batch->block_tables.assign(static_cast<size_t>(step.sequences_size()) * max_blocks, 0);
  for (int s = 0; s < step.sequences_size(); ++s) {
    const std::vector<int32_t>& table = sequences_[step.sequences(s).seq_id()].block_table;
    std::copy(table.begin(), table.end(), batch->block_tables.begin() + s * max_blocks);
  }
  return absl::OkStatus();
}

absl::Status StepState::ApplySequenceStep(const wv1::SequenceStep& seq_step, HostBatch* batch) {
  auto it = sequences_.find(seq_step.seq_id());
  if (it == sequences_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("step ", last_step_id_, ": unknown sequence ", seq_step.seq_id()));
  }
  std::vector<int32_t>& table = it->second.block_table;
  if (seq_step.reset_block_table()) {
    table.clear();
    it->second.has_table = true;
  } else if (!it->second.has_table) {
    return absl::FailedPreconditionError(
        absl::StrCat("step ", last_step_id_, ": sequence ", seq_step.seq_id(),
                     " was preempted and comes back without a table reset"));
  }
  for (const wv1::BlockReplacement& replacement : seq_step.replacements()) {
    if (replacement.index() < 0 || replacement.index() >= static_cast<int>(table.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", seq_step.seq_id(), ": replacement index ", replacement.index(),
                       " outside its table of ", table.size(), " blocks"));
    }
    table[replacement.index()] = replacement.block_id();
  }
  for (int32_t block : seq_step.new_block_ids()) table.push_back(block);
  for (int32_t block : table) {
    if (block < 0 || block >= num_blocks_) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", seq_step.seq_id(), ": block ",
                                                     block, " outside [0, ", num_blocks_, ")"));
    }
  }

  const int32_t first = seq_step.first_position();
  const int32_t count = seq_step.token_ids_size();
  const int64_t end = static_cast<int64_t>(first) + count;
  if (first < 0 || count <= 0 || end > static_cast<int64_t>(table.size()) * block_size_) {
    return absl::InvalidArgumentError(absl::StrCat("sequence ", seq_step.seq_id(), ": positions [",
                                                   first, ", ", end, ") do not fit its ",
                                                   table.size(), " blocks of ", block_size_));
  }
  for (int32_t i = 0; i < count; ++i) {
    int32_t token = seq_step.token_ids(i);
    if (token == kSampledTokenPlaceholder && i == count - 1) {
      // Async scheduling: the token this sequence sampled in the step before, filled in on the
      // device.
      const SequenceMirror& mirror = it->second;
      if (mirror.last_sampled_step == 0 || mirror.last_sampled_step != last_step_id_ - 1) {
        return absl::FailedPreconditionError(
            absl::StrCat("step ", last_step_id_, ": sequence ", seq_step.seq_id(),
                         " computes the token it sampled in step ", last_step_id_ - 1,
                         " (token id -1), but it sampled none there"));
      }
      batch->placeholder_fills.push_back(batch->num_tokens());
      batch->placeholder_fills.push_back(mirror.last_sample_row);
      token = 0;
    }
    if (token < 0 || token >= vocab_size_) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", seq_step.seq_id(), ": token id ",
                                                     token, " outside [0, ", vocab_size_, ")"));
    }
    const int32_t position = first + i;
    batch->token_ids.push_back(token);
    batch->positions.push_back(position);
    batch->slot_mapping.push_back(table[position / block_size_] * block_size_ +
                                  position % block_size_);
  }
  batch->context_lens.push_back(static_cast<int32_t>(end));
  batch->query_start.push_back(batch->num_tokens());
  batch->max_query_len = std::max(batch->max_query_len, count);
  if (seq_step.sample()) {
    SequenceMirror& mirror = it->second;
    mirror.last_sample_row = static_cast<int32_t>(batch->sample_rows.size());
    mirror.last_sampled_step = last_step_id_;
    batch->sample_rows.push_back(batch->num_tokens() - 1);
    batch->sample_seq_ids.push_back(seq_step.seq_id());
    batch->sample_top_logprobs.push_back(mirror.sampling.num_top_logprobs);
    batch->all_greedy =
        batch->all_greedy && mirror.sampling.greedy() && mirror.sampling.num_top_logprobs < 0;
  }
  return absl::OkStatus();
}

const SamplingParams& StepState::sampling(uint64_t seq_id) const {
  auto it = sequences_.find(seq_id);
  PAGEDLLM_CHECK(it != sequences_.end(), "no sampling parameters for sequence ", seq_id);
  return it->second.sampling;
}

std::vector<int32_t> StepState::block_table(uint64_t seq_id) const {
  auto it = sequences_.find(seq_id);
  return it == sequences_.end() ? std::vector<int32_t>() : it->second.block_table;
}

int StepState::num_tables() const {
  int n = 0;
  for (const auto& [seq_id, mirror] : sequences_) n += mirror.has_table;
  return n;
}

kernels::SampleRowParams StepState::NextSampleParams(uint64_t seq_id) {
  auto it = sequences_.find(seq_id);
  PAGEDLLM_CHECK(it != sequences_.end(), "no sampling parameters for sequence ", seq_id);
  SequenceMirror& mirror = it->second;
  const SamplingParams& params = mirror.sampling;
  kernels::SampleRowParams row;
  row.temperature = params.temperature;
  row.top_k = params.top_k;
  row.top_p = params.top_p;
  row.min_p = params.min_p;
  row.set_seed(params.seed);
  row.set_draw(mirror.num_draws++);
  row.num_top_logprobs = params.num_top_logprobs > 0 ? params.num_top_logprobs : 0;
  return row;
}

}  // namespace pagedllm::worker
