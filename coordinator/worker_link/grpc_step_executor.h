// StepExecutor over the workers' gRPC control streams: encodes a SchedulerOutput as a
// StepInstruction (the one place that does), sends it through the WorkerHub and decodes rank 0's
// tokens. Each step waits for as long as its StepDeadline allows.
#pragma once

#include "absl/time/time.h"
#include "coordinator/engine/step_executor.h"
#include "coordinator/worker_link/step_deadline.h"
#include "coordinator/worker_link/worker_hub.h"

namespace pagedllm::coordinator {

// Encodes `step` into *encoded_step, which is cleared first. Encoding step after step into the same
// message reuses its sequence entries (protobuf keeps cleared elements): no allocation per
// sequence once it has held a batch as large.
void EncodeStep(const SchedulerOutput& step, pagedllm::worker::v1::StepInstruction* encoded_step);
pagedllm::worker::v1::StepInstruction EncodeStep(const SchedulerOutput& step);
// Rank 0's reply as the engine takes it.
StepOutcome DecodeStepResult(const pagedllm::worker::v1::StepResult& result);

class GrpcStepExecutor final : public StepExecutor {
 public:
  // step_timeout: the most any step may take (the cap of StepDeadline).
  GrpcStepExecutor(WorkerHub* hub, absl::Duration step_timeout)
      : hub_(hub), deadline_(step_timeout) {}

  absl::StatusOr<StepOutcome> Execute(const SchedulerOutput& step) override;
  absl::Status health() const override { return hub_->health(); }

 private:
  WorkerHub* hub_;
  StepDeadline deadline_;                             // used by the engine thread only
  pagedllm::worker::v1::CoordinatorMessage message_;  // the step being sent; the engine thread's
};

}  // namespace pagedllm::coordinator
