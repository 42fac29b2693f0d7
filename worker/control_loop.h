// The worker's side of the control stream: dial the coordinator, say hello, then execute each
// step it sends, in order, until it says Shutdown or the stream ends. Rank 0 sends the results.
// A step whose instruction arrives while the step before still runs on the device is launched
// behind it (ModelRunner), before the step before's result goes out.
// A failed step is reported (WorkerError) and ends the loop with that status: the caller aborts
// the whole MPI job, since the other ranks may be waiting in a collective.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "pagedllm/worker/v1/worker.pb.h"
#include "worker/model_runner.h"

namespace pagedllm::worker {

// When a step is launched before the one before it is finished (--launch_ahead).
enum class LaunchAhead {
  kAuto,    // when its instruction comes before the step before has ended on the device
  kAlways,  // whenever its instruction is already here (tests the path on the CPU backend,
            // whose steps have ended when launched)
  kNever,   // never: each step is finished first
};

// "auto", "always" or "never"; INVALID_ARGUMENT naming the flag otherwise.
absl::StatusOr<LaunchAhead> ParseLaunchAhead(const std::string& value);

// Returns OK after a Shutdown or when the coordinator went away between steps.
absl::Status RunControlLoop(const std::string& coordinator_address, absl::Duration connect_timeout,
                            const pagedllm::worker::v1::WorkerHello& hello, ModelRunner& runner,
                            LaunchAhead launch_ahead = LaunchAhead::kAuto);

}  // namespace pagedllm::worker
