// StepExecutor over the workers' gRPC control streams: encodes a SchedulerOutput as a
// StepInstruction (the one place that does), sends it through the WorkerHub and decodes rank 0's
// tokens. Each step waits for as long as its StepDeadline allows, counted from when the workers
// could start it (sent, and the step before it received).
#pragma once

#include <deque>

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

  absl::Status Send(const SchedulerOutput& step) override;
  absl::StatusOr<StepOutcome> Receive(uint64_t step_id) override;
  absl::Status health() const override { return hub_->health(); }

 private:
  struct Sent {
    uint64_t step_id = 0;
    int num_tokens = 0;
    absl::Time sent;
  };
  WorkerHub* hub_;
  // The engine thread's: the deadlines, the steps in flight and the message being sent.
  StepDeadline deadline_;
  std::deque<Sent> in_flight_;
  absl::Time last_received_ = absl::InfinitePast();
  pagedllm::worker::v1::CoordinatorMessage message_;
};

}  // namespace pagedllm::coordinator
