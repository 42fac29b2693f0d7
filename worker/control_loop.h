// The worker's side of the control stream: dial the coordinator, say hello, then execute each
// step it sends, in order, until it says Shutdown or the stream ends. Rank 0 sends the results.
// A failed step is reported (WorkerError) and ends the loop with that status: the caller aborts
// the whole MPI job, since the other ranks may be waiting in a collective.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "pagedllm/worker/v1/worker.pb.h"
#include "worker/model_runner.h"

namespace pagedllm::worker {

// Returns OK after a Shutdown or when the coordinator went away between steps.
absl::Status RunControlLoop(const std::string& coordinator_address, absl::Duration connect_timeout,
                            const pagedllm::worker::v1::WorkerHello& hello, ModelRunner& runner);

}  // namespace pagedllm::worker
