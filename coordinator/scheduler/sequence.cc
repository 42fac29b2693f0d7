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
    case SequenceStatus::kFinishedStopped:
      return "FINISHED_STOPPED";
    case SequenceStatus::kFinishedLength:
      return "FINISHED_LENGTH";
    case SequenceStatus::kFinishedAborted:
      return "FINISHED_ABORTED";
  }
  return "?";
}

Sequence::Sequence(uint64_t seq_id, std::string request_id, std::vector<int32_t> prompt_token_ids,
                   int max_tokens)
    : seq_id(seq_id),
      request_id(std::move(request_id)),
      token_ids(std::move(prompt_token_ids)),
      num_prompt_tokens(static_cast<int>(token_ids.size())),
      max_tokens(max_tokens) {}

}  // namespace pagedllm::coordinator
