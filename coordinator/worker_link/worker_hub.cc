#include "coordinator/worker_link/worker_hub.h"

#include "absl/strings/str_cat.h"
#include "common/constant_time.h"
#include "common/logging.h"
#include "coordinator/worker_link/hello_validation.h"

namespace pagedllm::coordinator {

namespace wv1 = pagedllm::worker::v1;

WorkerHub::WorkerHub(int world_size, std::string secret)
    : world_size_(world_size), secret_(std::move(secret)), workers_(world_size) {}

grpc::Status WorkerHub::Connect(grpc::ServerContext* context, Stream* stream) {
  wv1::WorkerMessage message;
  if (!stream->Read(&message) || !message.has_hello()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first message must be a hello");
  }
  const wv1::WorkerHello hello = message.hello();
  const int rank = hello.rank();
  const std::string peer = PeerAddress(context->peer());
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!secret_.empty() && !SameSecret(hello.secret(), secret_)) {
      PAGEDLLM_LOG(WARNING) << "refused a worker connection from " << context->peer()
                            << " (claims rank " << rank << ", host \"" << hello.hostname()
                            << "\"): its hello does not carry this launch's secret";
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "the hello does not carry this cluster's worker secret");
    }
    // A bad or duplicate hello is refused and logged; the workers already here keep serving.
    absl::Status valid = CheckHandshake(hello, peer, handshake_);
    if (valid.ok()) valid = ValidateHello(hello, world_size_);
    if (valid.ok() && shutting_down_) {
      valid = absl::UnavailableError("the coordinator is shutting down its workers");
    }
    if (valid.ok() && workers_[rank].hello.has_value()) {
      valid = absl::AlreadyExistsError(
          absl::StrCat("worker rank ", rank, " is already connected (from ",
                       workers_[rank].hello->hostname(), " pid ", workers_[rank].hello->pid(),
                       "); refused a second hello from ", hello.hostname(), " pid ", hello.pid()));
    }
    for (const Worker& other : workers_) {
      if (!valid.ok() || !other.hello.has_value()) continue;
      valid = CheckSameCluster(hello, *other.hello);
    }
    if (!valid.ok()) {
      PAGEDLLM_LOG(WARNING) << "refused a worker connection: " << valid.message();
      return grpc::Status(static_cast<grpc::StatusCode>(valid.code()),
                          std::string(valid.message()));
    }
    workers_[rank].stream = stream;
    workers_[rank].context = context;
    workers_[rank].hello = hello;
    workers_[rank].peer_address = peer;
    workers_[rank].last_heartbeat = std::chrono::steady_clock::now();
    PAGEDLLM_LOG(INFO) << "worker rank " << rank << " connected from " << hello.hostname() << " ("
                       << peer << ") pid " << hello.pid() << " device " << hello.device();
    changed_.notify_all();
  }

  while (stream->Read(&message)) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (workers_[rank].stream != stream) break;  // forgotten by Reset: its words count no more
    if (message.has_heartbeat()) {
      workers_[rank].last_heartbeat = std::chrono::steady_clock::now();
      continue;  // nothing waits on a heartbeat
    }
    if (message.has_result()) {
      const uint64_t step_id = message.result().step_id();
      results_[step_id] = std::move(*message.mutable_result());  // the whole batch: not copied
    } else if (message.has_error()) {
      Fail(absl::StrCat("worker rank ", rank, " failed at step ", message.error().step_id(), ": ",
                        message.error().message()));
    }
    changed_.notify_all();
  }

  {
    // Wait for any write in flight on this stream, then forget it (unless Reset already did).
    std::lock_guard<std::mutex> write_lock(*workers_[rank].write_mutex);
    std::lock_guard<std::mutex> lock(mutex_);
    if (workers_[rank].stream == stream) {
      workers_[rank].stream = nullptr;
      workers_[rank].context = nullptr;
      if (!shutting_down_) {
        Fail(absl::StrCat("worker ", DescribeWorker(hello, peer), " disconnected",
                          context->IsCancelled() ? " (stream cancelled)" : ""));
      }
      changed_.notify_all();
    }
  }
  return grpc::Status::OK;
}

void WorkerHub::ExpectHandshake(HandshakeExpectations expected) {
  std::lock_guard<std::mutex> lock(mutex_);
  handshake_ = std::move(expected);
}

void WorkerHub::Fail(const std::string& reason) {
  if (failure_.empty()) {
    failure_ = reason;
    PAGEDLLM_LOG(ERROR) << "cluster unavailable: " << reason;
  }
}

void WorkerHub::CheckHeartbeats() {
  std::lock_guard<std::mutex> lock(mutex_);
  CheckHeartbeatsLocked();
}

void WorkerHub::CheckHeartbeatsLocked() {
  if (shutting_down_ || !failure_.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  for (int rank = 0; rank < world_size_; ++rank) {
    const Worker& worker = workers_[rank];
    if (worker.stream == nullptr || !worker.hello.has_value()) continue;
    if (now - worker.last_heartbeat <= kHeartbeatTimeout) continue;
    Fail(absl::StrCat(
        "worker ", DescribeWorker(*worker.hello, worker.peer_address), " sent no heartbeat for ",
        std::chrono::duration_cast<std::chrono::milliseconds>(now - worker.last_heartbeat).count() /
            1000.0,
        " s: it is hung or stopped"));
    changed_.notify_all();
    return;
  }
}

void WorkerHub::MarkLost(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (shutting_down_) return;
  Fail(reason);
  changed_.notify_all();
}

absl::Status WorkerHub::health() const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!failure_.empty()) return absl::UnavailableError(failure_);
  if (shutting_down_) return absl::UnavailableError("the coordinator is stopping its workers");
  if (!ready_) return absl::UnavailableError("the workers are starting");
  for (int rank = 0; rank < world_size_; ++rank) {
    if (workers_[rank].stream == nullptr) {
      return absl::UnavailableError(absl::StrCat("worker rank ", rank, " is not connected"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<wv1::WorkerHello> WorkerHub::WaitForWorkers(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(timeout);
  auto all_here = [&] {
    for (const Worker& worker : workers_) {
      if (!worker.hello.has_value()) return false;
    }
    return true;
  };
  while (failure_.empty() && !shutting_down_ && !all_here()) {
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout) {
      int connected = 0;
      for (const Worker& worker : workers_) connected += worker.hello.has_value();
      return absl::DeadlineExceededError(absl::StrCat("only ", connected, " of ", world_size_,
                                                      " workers connected within ",
                                                      absl::FormatDuration(timeout)));
    }
  }
  if (!failure_.empty()) return absl::UnavailableError(failure_);
  if (shutting_down_) return absl::UnavailableError("the coordinator is shutting down");
  const wv1::WorkerHello& first = *workers_[0].hello;
  for (const Worker& worker : workers_) {
    if (worker.hello->num_kv_blocks() != first.num_kv_blocks() ||
        worker.hello->block_size() != first.block_size()) {
      return absl::FailedPreconditionError(
          absl::StrCat("workers disagree on the KV cache: rank ", worker.hello->rank(), " has ",
                       worker.hello->num_kv_blocks(), " blocks of ", worker.hello->block_size(),
                       ", rank 0 has ", first.num_kv_blocks(), " of ", first.block_size()));
    }
  }
  return first;
}

bool WorkerHub::Write(int rank, const wv1::CoordinatorMessage& message) {
  std::lock_guard<std::mutex> write_lock(*workers_[rank].write_mutex);
  Stream* stream;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stream = workers_[rank].stream;
  }
  return stream != nullptr && stream->Write(message);
}

absl::Status WorkerHub::SendStep(const wv1::CoordinatorMessage& message) {
  const uint64_t step_id = message.step().step_id();
  {
    absl::Status status = health();
    if (!status.ok()) return status;
  }
  for (int rank = 0; rank < world_size_; ++rank) {
    if (!Write(rank, message)) {
      MarkLost(absl::StrCat("worker rank ", rank, " stopped accepting steps (step ", step_id, ")"));
      return health();
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<wv1::StepResult> WorkerHub::AwaitResult(uint64_t step_id, absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  // A silent rank is found by the supervisor's heartbeat checks (Fail wakes this wait); what is
  // left for the deadline is a rank stuck inside the step with its heartbeats going.
  const bool ended = changed_.wait_until(
      lock, std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(timeout),
      [&] { return !failure_.empty() || shutting_down_ || results_.count(step_id) > 0; });
  if (!ended) {
    CheckHeartbeatsLocked();  // the better explanation, if a rank has just gone silent
    if (failure_.empty()) {
      Fail(absl::StrCat("step ", step_id, " got no result from rank 0 within ",
                        absl::FormatDuration(timeout),
                        ": every rank still sends heartbeats, so one is stuck inside the step (in "
                        "a kernel, a collective or the device)"));
    }
  }
  if (!failure_.empty()) return absl::UnavailableError(failure_);
  if (shutting_down_) {
    return absl::UnavailableError(
        absl::StrCat("step ", step_id, " ended: the coordinator is stopping its workers"));
  }
  wv1::StepResult result = std::move(results_[step_id]);
  results_.erase(step_id);
  return result;
}

bool WorkerHub::failed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return !failure_.empty();
}

std::vector<bool> WorkerHub::connected_ranks() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<bool> connected;
  connected.reserve(workers_.size());
  for (const Worker& worker : workers_) connected.push_back(worker.stream != nullptr);
  return connected;
}

void WorkerHub::Reset(std::string secret) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (Worker& worker : workers_) {
    if (worker.context != nullptr) worker.context->TryCancel();
    worker.stream = nullptr;
    worker.context = nullptr;
    worker.hello.reset();
  }
  results_.clear();
  failure_.clear();
  shutting_down_ = false;
  ready_ = false;
  secret_ = std::move(secret);
  changed_.notify_all();
}

void WorkerHub::MarkReady() {
  std::lock_guard<std::mutex> lock(mutex_);
  ready_ = true;
  changed_.notify_all();
}

void WorkerHub::Shutdown(const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    shutting_down_ = true;
    changed_.notify_all();
  }
  wv1::CoordinatorMessage message;
  message.mutable_shutdown()->set_reason(reason);
  for (int rank = 0; rank < world_size_; ++rank) Write(rank, message);
}

}  // namespace pagedllm::coordinator
