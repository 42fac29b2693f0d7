#include "coordinator/worker_link/grpc_step_executor.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "proto/worker_protocol.h"

namespace pagedllm::coordinator {

namespace wv1 = pagedllm::worker::v1;

namespace {

void EncodeSampling(const SamplingParams& params, wv1::SamplingConfig* out) {
  out->set_temperature(params.temperature);
  out->set_top_p(params.top_p);
  out->set_top_k(params.top_k);
  out->set_min_p(params.min_p);
  out->set_seed(params.seed);
  out->set_num_top_logprobs(params.num_top_logprobs);
}

void EncodeSwaps(const std::vector<BlockSwap>& swaps,
                 google::protobuf::RepeatedPtrField<wv1::BlockSwap>* out) {
  for (const BlockSwap& swap : swaps) {
    wv1::BlockSwap* encoded = out->Add();
    encoded->set_device_block(swap.device_block);
    encoded->set_host_block(swap.host_block);
  }
}

}  // namespace

wv1::StepInstruction EncodeStep(const SchedulerOutput& step) {
  wv1::StepInstruction out;
  EncodeStep(step, &out);
  return out;
}

void EncodeStep(const SchedulerOutput& step, wv1::StepInstruction* encoded_step) {
  encoded_step->Clear();
  wv1::StepInstruction& out = *encoded_step;
  out.set_step_id(step.step_id);
  for (const SequenceFork& fork : step.forks) {
    wv1::SequenceFork* encoded = out.add_forks();
    encoded->set_parent_seq_id(fork.parent_seq_id);
    encoded->set_child_seq_id(fork.child_seq_id);
    EncodeSampling(fork.sampling, encoded->mutable_sampling());
  }
  out.mutable_finished_sequence_ids()->Add(step.finished_seq_ids.begin(),
                                           step.finished_seq_ids.end());
  out.mutable_preempted_sequence_ids()->Add(step.preempted_seq_ids.begin(),
                                            step.preempted_seq_ids.end());
  EncodeSwaps(step.swap_out, out.mutable_swap_out());
  EncodeSwaps(step.swap_in, out.mutable_swap_in());
  for (const BlockCopy& copy : step.block_copies) {
    wv1::BlockCopy* encoded = out.add_block_copies();
    encoded->set_src(copy.src_block_id);
    encoded->set_dst(copy.dst_block_id);
  }
  for (const NewSequence& seq : step.new_sequences) {
    wv1::NewSequence* encoded = out.add_new_sequences();
    encoded->set_seq_id(seq.seq_id);
    EncodeSampling(seq.sampling, encoded->mutable_sampling());
  }
  out.mutable_sequences()->Reserve(static_cast<int>(step.scheduled.size()));
  for (const ScheduledSequence& scheduled : step.scheduled) {
    static_assert(kPendingTokenId == kSampledTokenPlaceholder);
    wv1::SequenceStep* encoded = out.add_sequences();
    encoded->set_seq_id(scheduled.seq_id);
    encoded->mutable_token_ids()->Add(scheduled.token_ids.begin(), scheduled.token_ids.end());
    encoded->set_first_position(scheduled.begin);
    encoded->set_reset_block_table(scheduled.reset_block_table);
    encoded->mutable_new_block_ids()->Add(scheduled.new_block_ids.begin(),
                                          scheduled.new_block_ids.end());
    for (const BlockReplacement& replacement : scheduled.replacements) {
      wv1::BlockReplacement* r = encoded->add_replacements();
      r->set_index(replacement.table_index);
      r->set_block_id(replacement.block_id);
    }
    encoded->set_sample(scheduled.sample);
  }
}

StepOutcome DecodeStepResult(const wv1::StepResult& result) {
  StepOutcome outcome;
  outcome.forward_ns = result.forward_ns();
  outcome.device_busy_ns = result.device_busy_ns();
  outcome.device_idle_before_ns = result.device_idle_before_ns();
  std::vector<SampledTokenOut>& tokens = outcome.tokens;
  tokens.reserve(result.tokens_size());
  for (const wv1::SampledToken& token : result.tokens()) {
    SampledTokenOut out;
    out.seq_id = token.seq_id();
    out.token_id = token.token_id();
    out.logprobs.logprob = token.logprob();
    for (const wv1::TopToken& top : token.top()) {
      out.logprobs.top.emplace_back(top.token_id(), top.logprob());
    }
    tokens.push_back(std::move(out));
  }
  return outcome;
}

absl::Status GrpcStepExecutor::Send(const SchedulerOutput& step) {
  EncodeStep(step, message_.mutable_step());
  in_flight_.push_back({step.step_id, step.num_scheduled_tokens, absl::Now()});
  return hub_->SendStep(message_);
}

absl::StatusOr<StepOutcome> GrpcStepExecutor::Receive(uint64_t step_id) {
  while (!in_flight_.empty() && in_flight_.front().step_id != step_id) in_flight_.pop_front();
  if (in_flight_.empty()) {
    return absl::InternalError(absl::StrCat("step ", step_id, " was not sent"));
  }
  const Sent sent = in_flight_.front();
  in_flight_.pop_front();
  // The workers start a step once the one before it is done: with a step sent ahead, the
  // deadline counts from the previous result.
  const absl::Time started = std::max(sent.sent, last_received_);
  absl::StatusOr<wv1::StepResult> result =
      hub_->AwaitResult(step_id, deadline_.For(sent.num_tokens) + (started - sent.sent));
  last_received_ = absl::Now();
  if (!result.ok()) return result.status();
  deadline_.Observe(sent.num_tokens, last_received_ - started);
  return DecodeStepResult(*result);
}

}  // namespace pagedllm::coordinator
