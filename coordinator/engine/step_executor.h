// StepExecutor: how the engine runs one scheduled step on the workers. The gRPC implementation
// (coordinator/worker_link) encodes the plan as a StepInstruction for every worker; keeping it an
// interface keeps the engine free of gRPC types.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/engine/request.h"
#include "coordinator/scheduler/scheduler.h"

namespace pagedllm::coordinator {

// One engine step as the workers must see it.
struct StepPlan {
  uint64_t step_id = 0;
  const SchedulerOutput* output = nullptr;  // the scheduler's decisions
  const Scheduler* scheduler = nullptr;     // token ids of the scheduled sequences
  std::vector<std::pair<uint64_t, SamplingOptions>> new_sequences;  // first time on the workers
  std::vector<uint64_t> finished_seq_ids;  // workers drop these before the step
};

struct SampledTokenOut {
  uint64_t seq_id = 0;
  int32_t token_id = 0;
  TokenLogprobs logprobs;
};

struct StepOutcome {
  std::vector<SampledTokenOut> tokens;
  int64_t forward_ns = 0;  // rank 0's time on the step
};

class StepExecutor {
 public:
  virtual ~StepExecutor() = default;
  // Runs the step; returns one token per sequence scheduled with sample = true.
  // UNAVAILABLE when a worker is lost or misses the deadline.
  virtual absl::StatusOr<StepOutcome> Execute(const StepPlan& plan) = 0;
  // OK while every worker is healthy.
  virtual absl::Status health() const = 0;
};

}  // namespace pagedllm::coordinator
