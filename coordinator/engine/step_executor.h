// StepExecutor: how the engine runs one scheduled step on the workers. The gRPC implementation
// (coordinator/worker_link) encodes the SchedulerOutput as a StepInstruction for every worker;
// keeping it an interface keeps the engine free of gRPC types.
#pragma once

#include <cstdint>
#include <deque>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "coordinator/engine/request.h"
#include "coordinator/scheduler/scheduler.h"

namespace pagedllm::coordinator {

struct SampledTokenOut {
  uint64_t seq_id = 0;
  int32_t token_id = 0;
  TokenLogprobs logprobs;  // when the sequence's num_top_logprobs >= 0
};

struct StepOutcome {
  std::vector<SampledTokenOut> tokens;
  int64_t forward_ns = 0;  // rank 0's time on the step
  // Rank 0's device clock: its work on the step, and its idle time since the step before
  // (-1: unknown).
  int64_t device_busy_ns = -1;
  int64_t device_idle_before_ns = -1;
};

class StepExecutor {
 public:
  virtual ~StepExecutor() = default;
  // Sends the step to the workers without waiting for it to run. Async scheduling sends the
  // next step before it receives this one's outcome: up to two steps are in flight, and the
  // workers run them in the order sent. An error here comes again from Receive.
  virtual absl::Status Send(const SchedulerOutput& step) = 0;
  // Waits for the outcome of a step sent: one token per sequence scheduled with sample = true.
  // UNAVAILABLE when a worker is lost or misses the deadline.
  virtual absl::StatusOr<StepOutcome> Receive(uint64_t step_id) = 0;
  // OK while every worker is healthy.
  virtual absl::Status health() const = 0;
};

// A StepExecutor that runs each step as it is sent (fakes in tests and tools implement Run).
class RunOnSendExecutor : public StepExecutor {
 public:
  absl::Status Send(const SchedulerOutput& step) final {
    outcomes_.emplace_back(step.step_id, Run(step));
    return outcomes_.back().second.status();
  }
  absl::StatusOr<StepOutcome> Receive(uint64_t step_id) final {
    for (auto it = outcomes_.begin(); it != outcomes_.end(); ++it) {
      if (it->first != step_id) continue;
      absl::StatusOr<StepOutcome> outcome = std::move(it->second);
      outcomes_.erase(it);
      return outcome;
    }
    return absl::InternalError(absl::StrCat("step ", step_id, " was not sent"));
  }

 protected:
  virtual absl::StatusOr<StepOutcome> Run(const SchedulerOutput& step) = 0;

 private:
  std::deque<std::pair<uint64_t, absl::StatusOr<StepOutcome>>> outcomes_;
};

}  // namespace pagedllm::coordinator
