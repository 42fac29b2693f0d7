#include "coordinator/scheduler/sequence.h"

#include <utility>

namespace pagedllm::coordinator {

const char* SequenceStatusName(SequenceStatus status) {
  switch (status) {
    case SequenceStatus::kWaiting:
      return "WAITING";
    case SequenceStatus::kRunning:
      return "RUNNING";
    case SequenceStatus::kPreempted:
      return "PREEMPTED";
    case SequenceStatus::kSwapped:
      return "SWAPPED";
    case SequenceStatus::kFinishedStopped:
      return "FINISHED_STOPPED";
    case SequenceStatus::kFinishedLength:
      return "FINISHED_LENGTH";
    case SequenceStatus::kFinishedAborted:
      return "FINISHED_ABORTED";
  }
  return "?";
}

Sequence::Sequence(uint64_t seq_id, SequenceGroup* group, std::vector<int32_t> token_ids,
                   int num_prompt_tokens, SamplingParams sampling)
    : seq_id(seq_id),
      group(group),
      token_ids(std::move(token_ids)),
      num_prompt_tokens(num_prompt_tokens),
      sampling(sampling) {}

int Sequence::compute_end() const {
  return group != nullptr && group->fork_at >= 0 ? group->fork_at : num_tokens();
}

}  // namespace pagedllm::coordinator
