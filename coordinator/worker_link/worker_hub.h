// WorkerHub: the coordinator's end of every worker's control stream.
//
// Each worker (one per MPI rank) dials in and calls Connect once; its gRPC handler thread reads
// that worker's messages for the life of the stream. The engine thread sends steps with RunStep,
// which writes the same instruction to every worker and waits, with a deadline, for rank 0's
// result. A worker whose stream closes, or that reports an error, makes the hub unhealthy: every
// later RunStep fails at once with UNAVAILABLE naming the rank, until the supervisor tears the
// workers down, calls Reset() for the next set and MarkReady() once the engine is ready for them.
// Thread safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "coordinator/worker_link/hello_validation.h"
#include "pagedllm/worker/v1/worker.grpc.pb.h"

namespace pagedllm::coordinator {

class WorkerHub final : public pagedllm::worker::v1::WorkerControl::Service {
 public:
  // `secret`: what every hello must carry (empty: none is asked for, in tests of the hub alone).
  WorkerHub(int world_size, std::string secret);

  grpc::Status Connect(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<pagedllm::worker::v1::CoordinatorMessage,
                               pagedllm::worker::v1::WorkerMessage>* stream) override;

  // What every hello must match besides the secret (see CheckHandshake); set before the workers
  // are launched. Without it the handshake is not checked.
  void ExpectHandshake(HandshakeExpectations expected);

  // Waits until every rank has said hello; returns rank 0's hello. DEADLINE_EXCEEDED when they
  // do not all come in time, UNAVAILABLE when one was lost or the hub shuts down,
  // FAILED_PRECONDITION when the ranks disagree (world size, block count).
  absl::StatusOr<pagedllm::worker::v1::WorkerHello> WaitForWorkers(absl::Duration timeout);

  // Sends `message` (its step) to every worker, without waiting for the result. The caller
  // keeps the message, to encode the next step into it without allocating (GrpcStepExecutor).
  absl::Status SendStep(const pagedllm::worker::v1::CoordinatorMessage& message);
  // Waits up to `timeout` for rank 0's result of a step sent.
  absl::StatusOr<pagedllm::worker::v1::StepResult> AwaitResult(uint64_t step_id,
                                                               absl::Duration timeout);

  // Marks the hub unavailable with `reason` (e.g. the worker processes exited).
  void MarkLost(const std::string& reason);
  // Tells every connected worker to exit; streams end when they hang up. A step or a
  // WaitForWorkers in progress returns UNAVAILABLE at once.
  void Shutdown(const std::string& reason);
  // Forgets every worker (their streams are cancelled), every result and the failure, and
  // waits for a new set of workers carrying `secret`. Not ready until MarkReady().
  void Reset(std::string secret);
  // The workers connected since the last Reset may run steps (health() may say OK).
  void MarkReady();

  // Marks the hub unavailable, naming the rank, when a connected worker sent no heartbeat for
  // kHeartbeatTimeout (hung, stopped, or its host gone quiet). Called every 100 ms by the
  // supervisor, and by RunStep when a step's deadline passes.
  void CheckHeartbeats();
  static constexpr std::chrono::milliseconds kHeartbeatTimeout{3000};

  // OK while every worker is connected and healthy and the hub is ready; else UNAVAILABLE with
  // the reason.
  absl::Status health() const;
  // Whether a worker was lost or failed since the last Reset (a restart is due).
  bool failed() const;
  // [world_size]: whether each rank's control stream is open now (for metrics).
  std::vector<bool> connected_ranks() const;
  int world_size() const { return world_size_; }

 private:
  using Stream = grpc::ServerReaderWriter<pagedllm::worker::v1::CoordinatorMessage,
                                          pagedllm::worker::v1::WorkerMessage>;
  struct Worker {
    Stream* stream = nullptr;                // null once the stream is gone (or forgotten by Reset)
    grpc::ServerContext* context = nullptr;  // valid while stream is set
    std::optional<pagedllm::worker::v1::WorkerHello> hello;
    std::string peer_address;  // where its stream comes from (PeerAddress of gRPC's peer)
    std::unique_ptr<std::mutex> write_mutex = std::make_unique<std::mutex>();
    std::chrono::steady_clock::time_point last_heartbeat;
  };
  void CheckHeartbeatsLocked();  // requires mutex_

  void Fail(const std::string& reason);  // requires mutex_
  bool Write(int rank, const pagedllm::worker::v1::CoordinatorMessage& message);

  const int world_size_;
  std::string secret_;               // guarded by mutex_
  HandshakeExpectations handshake_;  // guarded by mutex_
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Worker> workers_;
  std::map<uint64_t, pagedllm::worker::v1::StepResult> results_;
  std::string failure_;  // non-empty once unavailable
  bool shutting_down_ = false;
  bool ready_ = false;
};

}  // namespace pagedllm::coordinator
