// WorkerLauncher: starts the workers as one `mpirun` job (its own process group) and watches it.
// If the job exits while it is still wanted, `on_exit` is called with a description (the
// coordinator then marks the cluster unavailable). Stop() ends the job: it waits for a clean
// exit, then sends SIGTERM and finally SIGKILL to the whole process group, so no worker outlives
// the coordinator. The job's output passes through this process (on to stderr), so that the last
// error a worker logged can be named when the job ends. Thread safe.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace pagedllm::coordinator {

class WorkerLauncher {
 public:
  WorkerLauncher() = default;
  ~WorkerLauncher();
  WorkerLauncher(const WorkerLauncher&) = delete;
  WorkerLauncher& operator=(const WorkerLauncher&) = delete;

  // argv[0] is the program (e.g. mpirun); looked up on PATH. The job gets this process's
  // environment with `env` ("NAME=value" entries) added or replaced: kept out of argv, which any
  // local user can read (the worker secret goes this way).
  absl::Status Start(const std::vector<std::string>& argv,
                     std::function<void(const std::string&)> on_exit,
                     const std::vector<std::string>& env = {});
  // Waits up to `grace` for the job to exit by itself, then terminates its process group.
  void Stop(absl::Duration grace);
  bool running() const;

 private:
  void Watch();
  // Copies the job's output to stderr, remembering the last error line a worker wrote.
  void Relay(int fd);

  mutable std::mutex mutex_;
  pid_t pid_ = -1;
  bool exited_ = false;
  bool stopping_ = false;
  std::function<void(const std::string&)> on_exit_;
  std::thread watcher_;
  std::thread relay_;
  bool relay_done_ = false;      // the job's output reached its end
  bool stop_relay_ = false;      // give up waiting for it (a stray process holds it open)
  std::string last_error_line_;  // guarded by mutex_
  std::condition_variable relayed_;
};

}  // namespace pagedllm::coordinator
