// The engine across a lost worker and a supervised restart, with a fake executor: the requests
// the workers had started fail with the executor's status, the waiting ones are kept, no step
// runs while it is unhealthy, and Reconfigure() runs the kept ones on the new KV cache.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "coordinator/engine/engine.h"

namespace pagedllm::coordinator {
namespace {

constexpr int32_t kToken = 7;

// Samples kToken for every sampling sequence, a millisecond a step; fails steps and reports
// UNAVAILABLE while unhealthy.
class FakeExecutor final : public RunOnSendExecutor {
 public:
  absl::StatusOr<StepOutcome> Run(const SchedulerOutput& step) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::lock_guard<std::mutex> lock(mutex_);
    if (!healthy_) return Lost();
    ++steps_;
    StepOutcome outcome;
    for (const ScheduledSequence& scheduled : step.scheduled) {
      if (scheduled.sample) outcome.tokens.push_back({scheduled.seq_id, kToken, {}});
    }
    return outcome;
  }
  absl::Status health() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return healthy_ ? absl::OkStatus() : Lost();
  }
  void set_healthy(bool healthy) {
    std::lock_guard<std::mutex> lock(mutex_);
    healthy_ = healthy;
  }
  int steps() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return steps_;
  }
  static absl::Status Lost() {
    return absl::UnavailableError("worker rank 1 (host h) disconnected");
  }

 private:
  mutable std::mutex mutex_;
  bool healthy_ = true;
  int steps_ = 0;
};

RequestSpec Request(const std::string& key, int max_tokens) {
  RequestSpec spec;
  spec.request_id = key;
  spec.key = key;
  spec.prompt_token_ids = {1, 2, 3, 4, 5};
  spec.max_tokens = max_tokens;
  spec.ignore_eos = true;
  return spec;
}

// Waits for a handle's chunks the way the frontend does: woken by its listener, taking them
// without blocking.
bool WaitAndTake(RequestHandle& handle, absl::Duration timeout, std::vector<GenerationChunk>* out) {
  struct Waker {
    std::mutex mutex;
    std::condition_variable pushed;
    bool woken = false;
  };
  // Shared: a listener call in progress may outlive SetListener(nullptr).
  auto waker = std::make_shared<Waker>();
  handle.SetListener([waker] {
    std::lock_guard<std::mutex> lock(waker->mutex);
    waker->woken = true;
    waker->pushed.notify_all();
  });
  const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(timeout);
  bool took = handle.TryTake(out);
  while (!took) {
    std::unique_lock<std::mutex> lock(waker->mutex);
    if (!waker->pushed.wait_until(lock, deadline, [&] { return waker->woken; })) break;
    waker->woken = false;
    lock.unlock();
    took = handle.TryTake(out);
  }
  handle.SetListener(nullptr);
  return took;
}

// Everything the handle holds after up to `timeout`, until an error or the request's end.
std::vector<GenerationChunk> Drain(RequestHandle& handle, absl::Duration timeout) {
  std::vector<GenerationChunk> all;
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    std::vector<GenerationChunk> chunks;
    if (!WaitAndTake(handle, absl::Milliseconds(20), &chunks)) continue;
    for (GenerationChunk& chunk : chunks) {
      const bool last = chunk.request_done || !chunk.error.ok();
      all.push_back(std::move(chunk));
      if (last) return all;
    }
  }
  return all;
}

TEST(EngineRestartTest, StartedRequestsFailWaitingOnesRunOnTheNewWorkers) {
  SchedulerConfig config;
  config.max_num_seqs = 1;  // the second request waits behind the first
  config.max_model_len = 4096;
  config.blocks.num_blocks = 512;
  ModelLimits limits;
  limits.vocab_size = 100;
  limits.max_model_len = 4096;
  FakeExecutor executor;
  Engine engine(config, limits, &executor);
  engine.Start();

  std::shared_ptr<RequestHandle> running = engine.Submit(Request("running", 3000));
  std::vector<GenerationChunk> first;
  ASSERT_TRUE(WaitAndTake(*running, absl::Seconds(10), &first));
  ASSERT_TRUE(first.front().error.ok()) << first.front().error;
  std::shared_ptr<RequestHandle> waiting = engine.Submit(Request("waiting", 3));
  for (int i = 0; i < 1000 && engine.stats().num_waiting < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(engine.stats().num_waiting, 1);

  executor.set_healthy(false);
  const std::vector<GenerationChunk> failed = Drain(*running, absl::Seconds(5));
  ASSERT_FALSE(failed.empty());
  EXPECT_EQ(failed.back().error, FakeExecutor::Lost());
  // While unhealthy: no step, and the waiting request neither fails nor runs. A request that
  // arrives now waits too.
  std::shared_ptr<RequestHandle> arrived = engine.Submit(Request("arrived", 2));
  const int steps = executor.steps();
  std::vector<GenerationChunk> nothing;
  EXPECT_FALSE(WaitAndTake(*waiting, absl::Milliseconds(300), &nothing));
  EXPECT_FALSE(WaitAndTake(*arrived, absl::Milliseconds(1), &nothing));
  EXPECT_EQ(executor.steps(), steps);
  EXPECT_EQ(engine.stats().num_waiting, 2);

  // New workers with a KV cache of another size: both run on them, oldest first.
  BlockManagerConfig blocks = config.blocks;
  blocks.num_blocks = 256;
  executor.set_healthy(true);
  engine.Reconfigure(blocks, FakeExecutor::Lost());
  EXPECT_EQ(engine.stats().num_total_blocks, 256);
  EXPECT_EQ(engine.stats().num_reconfigurations, 1u);
  for (const auto& [handle, tokens] : {std::pair{waiting, 3}, std::pair{arrived, 2}}) {
    const std::vector<GenerationChunk> chunks = Drain(*handle, absl::Seconds(10));
    std::vector<int32_t> ids;
    for (const GenerationChunk& chunk : chunks) {
      EXPECT_TRUE(chunk.error.ok()) << chunk.error;
      ids.insert(ids.end(), chunk.token_ids.begin(), chunk.token_ids.end());
    }
    ASSERT_FALSE(chunks.empty());
    EXPECT_TRUE(chunks.back().request_done);
    EXPECT_EQ(ids, std::vector<int32_t>(tokens, kToken));
  }
  engine.Stop();
}

TEST(EngineRestartTest, StopFailsWaitingRequestsWithTheGivenReason) {
  SchedulerConfig config;
  config.blocks.num_blocks = 64;
  ModelLimits limits;
  limits.vocab_size = 100;
  limits.max_model_len = 4096;
  FakeExecutor executor;
  executor.set_healthy(false);
  Engine engine(config, limits, &executor);
  engine.Start();
  std::shared_ptr<RequestHandle> waiting = engine.Submit(Request("waiting", 3));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const absl::Status why = absl::UnavailableError("--max_restarts (0) restarts are spent");
  engine.Stop(why);
  const std::vector<GenerationChunk> chunks = Drain(*waiting, absl::Seconds(1));
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].error, why);
}

}  // namespace
}  // namespace pagedllm::coordinator
