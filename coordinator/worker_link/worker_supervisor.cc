#include "coordinator/worker_link/worker_supervisor.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "coordinator/worker_link/hello_validation.h"

namespace pagedllm::coordinator {
namespace {

std::string NewWorkerSecret() {
  std::random_device random;
  std::string secret;
  for (int i = 0; i < 4; ++i) secret += absl::StrCat(absl::Hex(random(), absl::kZeroPad8));
  return secret;
}

}  // namespace

WorkerSupervisor::WorkerSupervisor(WorkerHub* hub, SupervisorOptions options)
    : hub_(hub), options_(std::move(options)) {}

WorkerSupervisor::~WorkerSupervisor() { Stop("coordinator shutting down"); }

absl::StatusOr<pagedllm::worker::v1::WorkerHello> WorkerSupervisor::Start() {
  absl::StatusOr<pagedllm::worker::v1::WorkerHello> hello = Launch();
  if (hello.ok()) first_hello_ = *hello;
  return hello;
}

absl::StatusOr<pagedllm::worker::v1::WorkerHello> WorkerSupervisor::Launch() {
  const std::string secret =
      options_.fixed_secret.empty() ? NewWorkerSecret() : options_.fixed_secret;
  {
    // Under the lock, so that a Stop() either comes first (no launch) or shuts down the hub
    // after this Reset (the wait below ends at once).
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return absl::UnavailableError("the coordinator is stopping");
    hub_->Reset(secret);
  }
  if (!options_.command.empty()) {
    auto launcher = std::make_unique<WorkerLauncher>();
    const absl::Status started = launcher->Start(
        options_.command, [hub = hub_](const std::string& why) { hub->MarkLost(why); },
        {absl::StrCat("PAGEDLLM_WORKER_SECRET=", secret)});
    std::lock_guard<std::mutex> lock(mutex_);
    launcher_ = std::move(launcher);
    if (!started.ok()) return started;
  }
  return hub_->WaitForWorkers(options_.start_timeout);
}

void WorkerSupervisor::TearDown(const std::string& reason) {
  hub_->Shutdown(reason);
  std::unique_ptr<WorkerLauncher> launcher;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    launcher = std::move(launcher_);
  }
  if (launcher != nullptr) launcher->Stop(absl::Seconds(2));
}

void WorkerSupervisor::Watch(SupervisorCallbacks callbacks) {
  callbacks_ = std::move(callbacks);
  thread_ = std::thread([this] { Loop(); });
}

bool WorkerSupervisor::SleepUnlessStopped(absl::Duration duration) {
  std::unique_lock<std::mutex> lock(mutex_);
  wake_.wait_for(lock, absl::ToChronoNanoseconds(duration), [this] { return stopping_; });
  return !stopping_;
}

void WorkerSupervisor::Loop() {
  absl::Time healthy_since = absl::Now();
  while (SleepUnlessStopped(absl::Milliseconds(100))) {
    hub_->CheckHeartbeats();
    if (!hub_->failed()) {
      if (absl::Now() - healthy_since >= options_.stable_after) {
        std::lock_guard<std::mutex> lock(mutex_);
        num_restarts_ = 0;
      }
      continue;
    }
    if (!Recover(hub_->health())) return;
    healthy_since = absl::Now();
  }
}

bool WorkerSupervisor::Recover(absl::Status why) {
  callbacks_.set_serving(false);
  while (true) {
    TearDown(absl::StrCat("the coordinator restarts the workers after: ", why.message()));
    int restarts;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return false;
      restarts = num_restarts_;
    }
    if (restarts >= options_.max_restarts) {
      const absl::Status given_up = absl::UnavailableError(
          absl::StrCat("the workers failed and --max_restarts (", options_.max_restarts,
                       ") restarts are spent: ", why.message()));
      PAGEDLLM_LOG(ERROR) << given_up.message();
      callbacks_.give_up(given_up);
      return false;
    }
    const absl::Duration backoff =
        restarts == 0
            ? absl::ZeroDuration()
            : std::min(options_.max_backoff,
                       options_.first_backoff * (int64_t{1} << std::min(restarts - 1, 20)));
    PAGEDLLM_LOG(WARNING) << "restarting the workers (restart " << restarts + 1 << " of at most "
                          << options_.max_restarts << ", in " << absl::FormatDuration(backoff)
                          << ") after: " << why.message();
    if (!SleepUnlessStopped(backoff)) return false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++num_restarts_;
    }
    absl::StatusOr<pagedllm::worker::v1::WorkerHello> hello = Launch();
    if (!hello.ok()) {
      PAGEDLLM_LOG(ERROR) << "the restarted workers did not start: " << hello.status().message();
      why = hello.status();
      continue;
    }
    if (const absl::Status same = CheckSameModel(*hello, first_hello_); !same.ok()) {
      PAGEDLLM_LOG(ERROR) << same.message();
      callbacks_.give_up(same);
      return false;
    }
    callbacks_.restarted(*hello, why);
    hub_->MarkReady();
    callbacks_.set_serving(true);
    PAGEDLLM_LOG(INFO) << "the workers are back (" << hello->num_kv_blocks()
                       << " KV blocks): serving again";
    return true;
  }
}

void WorkerSupervisor::Stop(const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  hub_->Shutdown(reason);
  if (thread_.joinable()) thread_.join();
  TearDown(reason);
}

}  // namespace pagedllm::coordinator
