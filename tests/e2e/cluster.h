// Test harness: a real pagedllm cluster (pagedllm-coordinator launching `mpirun -np tp`
// pagedllm-worker processes) on loopback ports, and a gRPC stub to it. Stop() sends SIGTERM
// like a user's Ctrl-C and checks that every process exited.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "pagedllm/v1/generation.grpc.pb.h"

namespace pagedllm::testing {

struct ClusterOptions {
  ClusterOptions(std::string model_dir, int tp) : model_dir(std::move(model_dir)), tp(tp) {}
  std::string model_dir;
  int tp = 1;
  int num_kv_blocks = 0;  // 0: the default sizing
  int block_size = 16;
  std::vector<std::string> extra_flags;  // e.g. "--max_num_seqs=2"
  bool http = false;    // serve the OpenAI HTTP API on a free port (http_port()); else none
  std::string api_key;  // --api_key, also sent by the harness's own calls (GetStats)
  // false: --launch_workers=false, and `start_workers(worker_port)` is called once the
  // coordinator is spawned, to start them elsewhere before Start() waits for it to serve.
  bool launch_workers = true;
  std::function<void(int worker_port)> start_workers;
};

class Cluster {
 public:
  // Starts the cluster and waits until it serves (or fails to start; up to 3 tries when a
  // picked port was taken before the coordinator could listen on it).
  static absl::StatusOr<std::unique_ptr<Cluster>> Start(const ClusterOptions& options);
  ~Cluster();

  pagedllm::v1::Generation::Stub& stub() { return *stub_; }
  const std::string& address() const { return address_; }
  int worker_port() const { return worker_port_; }
  int http_port() const { return http_port_; }  // 0 without ClusterOptions::http
  const std::string& log_path() const { return log_path_; }
  std::string ReadLog() const;

  // Sends `signal_number` (default SIGTERM; SIGINT is a user's Ctrl-C) and waits; returns the
  // coordinator's exit status (or an error if it hung) and checks that no worker process of this
  // cluster is left.
  absl::Status Stop(int signal_number = SIGTERM);
  // Waits up to timeout_ms for the coordinator to exit by itself and returns its exit status
  // (-1 when a signal killed it); an error when it did not exit or a worker process outlived it.
  absl::StatusOr<int> WaitForExit(int timeout_ms);

  // Pids of this cluster's live worker processes (found by their --coordinator argument).
  std::vector<pid_t> WorkerPids() const;
  pid_t coordinator_pid() const { return pid_; }

  // Waits until every KV block is free again (the engine finishes aborts between steps).
  absl::StatusOr<pagedllm::v1::ServerStats> WaitForAllBlocksFree(int timeout_ms = 10000);

 private:
  Cluster() = default;
  // One try at Start(); Start() tries again (other ports) when a port was taken meanwhile.
  static absl::StatusOr<std::unique_ptr<Cluster>> StartOnce(const ClusterOptions& options);
  pid_t pid_ = -1;
  int worker_port_ = 0;
  int http_port_ = 0;
  std::string api_key_;
  std::string address_;
  std::string log_path_;
  std::unique_ptr<pagedllm::v1::Generation::Stub> stub_;
};

// Starts argv (argv[0] looked up on PATH) in a process group of its own, its output appended to
// log_path; returns its pid.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log_path);

// A free TCP port on 127.0.0.1 (bound, then released).
int PickFreePort();
// Environment overrides, for running the same tests from a bundle on a GPU node:
// PAGEDLLM_BIN_DIR, PAGEDLLM_SOURCE_DIR, PAGEDLLM_TEST_DEVICE (cpu|cuda), PAGEDLLM_TEST_DTYPE,
// PAGEDLLM_TEST_GPU_MEMORY_UTILIZATION (per worker; default 0.2).
std::string BinDir();      // build/bin
std::string SourceDir();   // the repository root
std::string TestDevice();  // "cpu" unless PAGEDLLM_TEST_DEVICE says otherwise
std::string EnvOr(const char* name, const std::string& fallback);

// Runs `argv` to completion with a timeout; returns {exit status, combined output}.
absl::StatusOr<std::pair<int, std::string>> RunCommand(const std::vector<std::string>& argv,
                                                       int timeout_ms);

}  // namespace pagedllm::testing
