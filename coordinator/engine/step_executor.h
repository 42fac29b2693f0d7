// StepExecutor: how the engine runs one scheduled step on the workers. The gRPC implementation
// (coordinator/worker_link) encodes the SchedulerOutput as a StepInstruction for every worker;
// keeping it an interface keeps the engine free of gRPC types.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
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
};

class StepExecutor {
 public:
  virtual ~StepExecutor() = default;
  // Runs the step; returns one token per sequence scheduled with sample = true.
  // UNAVAILABLE when a worker is lost or misses the deadline.
  virtual absl::StatusOr<StepOutcome> Execute(const SchedulerOutput& step) = 0;
  // OK while every worker is healthy.
  virtual absl::Status health() const = 0;
};

}  // namespace pagedllm::coordinator
