#include "coordinator/worker_link/grpc_step_executor.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace pagedllm::coordinator {

namespace wv1 = pagedllm::worker::v1;

wv1::StepInstruction EncodeStep(const StepPlan& plan) {
  wv1::StepInstruction step;
  step.set_step_id(plan.step_id);
  for (uint64_t seq_id : plan.finished_seq_ids) step.add_finished_sequence_ids(seq_id);
  for (const auto& [seq_id, options] : plan.new_sequences) {
    wv1::NewSequence* new_seq = step.add_new_sequences();
    new_seq->set_seq_id(seq_id);
    wv1::SamplingConfig* sampling = new_seq->mutable_sampling();
    sampling->set_temperature(options.temperature);
    sampling->set_top_p(options.top_p);
    sampling->set_top_k(options.top_k);
    sampling->set_min_p(options.min_p);
    sampling->set_seed(options.seed);
    sampling->set_num_top_logprobs(options.num_top_logprobs);
  }
  for (const BlockCopy& copy : plan.output->block_copies) {
    wv1::BlockCopy* out = step.add_block_copies();
    out->set_src(copy.src_block_id);
    out->set_dst(copy.dst_block_id);
  }
  for (const ScheduledSequence& scheduled : plan.output->scheduled) {
    const Sequence* sequence = plan.scheduler->Get(scheduled.seq_id);
    wv1::SequenceStep* seq_step = step.add_sequences();
    seq_step->set_seq_id(scheduled.seq_id);
    seq_step->mutable_token_ids()->Add(sequence->token_ids.begin() + scheduled.begin,
                                       sequence->token_ids.begin() + scheduled.end);
    seq_step->set_first_position(scheduled.begin);
    seq_step->set_reset_block_table(scheduled.reset_block_table);
    seq_step->mutable_new_block_ids()->Add(scheduled.new_block_ids.begin(),
                                           scheduled.new_block_ids.end());
    for (const BlockReplacement& replacement : scheduled.replacements) {
      wv1::BlockReplacement* out = seq_step->add_replacements();
      out->set_index(replacement.table_index);
      out->set_block_id(replacement.block_id);
    }
    seq_step->set_sample(scheduled.sample);
  }
  return step;
}

absl::StatusOr<StepOutcome> GrpcStepExecutor::Execute(const StepPlan& plan) {
  PAGEDLLM_ASSIGN_OR_RETURN(wv1::StepResult result, hub_->RunStep(EncodeStep(plan), step_timeout_));
  StepOutcome outcome;
  outcome.forward_ns = result.forward_ns();
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

}  // namespace pagedllm::coordinator
