// StepDeadline: how long the coordinator waits for a step's result before it calls the workers
// hung. One fixed deadline would have to cover the slowest step a model can ever take (a long
// prefill on a CPU, a graph capture), which leaves a worker that hangs in a decode step unseen for
// as long. This one follows the steps seen: kSlack times the slowest step so far of the same size
// or smaller (steps are grouped by powers of two of their token count; one size up counts too),
// at least kFloor and at most the cap (--step_timeout_s). A size never seen yet, and the first
// kWarmupSteps steps (they load kernels and fill caches), get the cap. Dead or stopped processes
// are found sooner, by their missing heartbeats (WorkerHub). Not thread safe.
#pragma once

#include <array>
#include <cstdint>

#include "absl/time/time.h"

namespace pagedllm::coordinator {

class StepDeadline {
 public:
  static constexpr int kSlack = 10;
  static constexpr absl::Duration kFloor = absl::Seconds(10);
  static constexpr int kWarmupSteps = 3;

  explicit StepDeadline(absl::Duration cap) : cap_(cap) {}

  // The deadline for a step computing `num_tokens` tokens.
  absl::Duration For(int num_tokens) const;
  // A step of `num_tokens` tokens took `took`.
  void Observe(int num_tokens, absl::Duration took);

 private:
  static int SizeClass(int num_tokens);

  absl::Duration cap_;
  int64_t num_observed_ = 0;
  // The slowest step seen in each size class (negative: none yet).
  std::array<absl::Duration, 32> slowest_ = [] {
    std::array<absl::Duration, 32> none;
    none.fill(-absl::InfiniteDuration());
    return none;
  }();
};

}  // namespace pagedllm::coordinator
