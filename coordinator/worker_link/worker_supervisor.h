// WorkerSupervisor: starts the workers and keeps them running. From a thread of its own it
// watches the WorkerHub (heartbeats every 100 ms). When a worker dies, hangs or fails a step:
//   1. health turns NOT_SERVING (the engine has already failed the requests the workers held);
//   2. the whole job is torn down (survivors told to exit, then its process group killed: no
//      rank is left spinning in a collective);
//   3. after a back-off (none before the first restart, then 1 s, 2 s, 4 s ... up to 30 s) a new
//      job is launched with a new secret, and its hello must show the same model;
//   4. the engine takes the new workers (its waiting requests run on them) and health turns
//      SERVING again.
// A restart that fails (the job dies or does not connect in time) counts as one and is retried.
// Past max_restarts restarts, give_up is called once and the supervisor stops watching: the
// coordinator exits non-zero so that an outer supervisor (systemd, Kubernetes) takes over.
// Serving for stable_after without a failure forgives the restarts before.
//
// With workers started elsewhere (no command), the supervisor tells the survivors to exit and
// waits for a new set to connect instead of launching one.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "coordinator/launcher/worker_launcher.h"
#include "coordinator/worker_link/worker_hub.h"

namespace pagedllm::coordinator {

struct SupervisorOptions {
  std::vector<std::string> command;  // mpirun ...; empty: the workers are started elsewhere
  // The secret each launch hands its workers (PAGEDLLM_WORKER_SECRET in the job's environment).
  // Empty: a new random one per launch. Workers started elsewhere must carry the operator's.
  std::string fixed_secret;
  int max_restarts = 5;
  absl::Duration start_timeout = absl::Minutes(5);  // every rank's hello, per launch
  absl::Duration first_backoff = absl::Seconds(1);  // before the second restart; doubles
  absl::Duration max_backoff = absl::Seconds(30);
  absl::Duration stable_after = absl::Minutes(10);
};

struct SupervisorCallbacks {
  std::function<void(bool serving)> set_serving;
  // The new workers are connected (rank 0's hello) after a failure (`why`): the engine takes
  // them. Returns when it has.
  std::function<void(const pagedllm::worker::v1::WorkerHello& hello, const absl::Status& why)>
      restarted;
  std::function<void(const absl::Status& why)> give_up;
};

class WorkerSupervisor {
 public:
  WorkerSupervisor(WorkerHub* hub, SupervisorOptions options);
  ~WorkerSupervisor();  // Stop("coordinator shutting down")
  WorkerSupervisor(const WorkerSupervisor&) = delete;
  WorkerSupervisor& operator=(const WorkerSupervisor&) = delete;

  // Launches the first workers and waits for every hello; returns rank 0's. The hub is not
  // marked ready: the caller does that once the engine is built.
  absl::StatusOr<pagedllm::worker::v1::WorkerHello> Start();
  // Starts watching (see above).
  void Watch(SupervisorCallbacks callbacks);
  // Stops watching, tells the workers to exit and ends the job (SIGTERM, then SIGKILL, to its
  // process group). Idempotent.
  void Stop(const std::string& reason);

 private:
  // One launch: a new secret, Reset, the job, every hello.
  absl::StatusOr<pagedllm::worker::v1::WorkerHello> Launch();
  // Ends the current job (if any); the hub stops counting its workers' departures as failures.
  void TearDown(const std::string& reason);
  void Loop();
  // Restarts until the workers serve again (true) or giving up or stopping (false).
  bool Recover(absl::Status why);
  // Sleeps up to `duration`; false when Stop() came meanwhile.
  bool SleepUnlessStopped(absl::Duration duration);

  WorkerHub* const hub_;
  const SupervisorOptions options_;
  SupervisorCallbacks callbacks_;
  pagedllm::worker::v1::WorkerHello first_hello_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  int num_restarts_ = 0;                      // since the last stable period
  std::unique_ptr<WorkerLauncher> launcher_;  // the current job; replaced by each launch
  std::thread thread_;
};

}  // namespace pagedllm::coordinator
