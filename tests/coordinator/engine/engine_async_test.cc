// Async scheduling through the whole engine: with a fake worker whose "model" makes each token a
// function of the token before it and its position, every request must come out exactly as it
// does when each step waits for the one before (EOS and max_tokens stops, parallel samples,
// preemption by recomputation under a small KV pool), while most steps are sent ahead.
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "coordinator/engine/engine.h"
#include "gtest/gtest.h"

namespace pagedllm::coordinator {
namespace {

constexpr int32_t kEos = 3;

int32_t NextToken(int32_t previous, int position) {
  return 3 + (previous * 7 + position * 13) % 40;  // kEos now and then
}

// A worker as the engine sees it: fills a placeholder with the token it sampled for that
// sequence in the step before (refusing one it has no such token for), and samples
// NextToken(last token, its position).
class ModelLikeExecutor final : public RunOnSendExecutor {
 public:
  explicit ModelLikeExecutor(absl::Duration step_time = absl::ZeroDuration())
      : step_time_(step_time) {}

  absl::StatusOr<StepOutcome> Run(const SchedulerOutput& step) override {
    absl::SleepFor(step_time_);
    std::lock_guard<std::mutex> lock(mutex_);
    for (uint64_t seq_id : step.finished_seq_ids) last_.erase(seq_id);
    StepOutcome outcome;
    for (const ScheduledSequence& scheduled : step.scheduled) {
      int32_t input = scheduled.token_ids.back();
      if (input == kPendingTokenId) {
        auto last = last_.find(scheduled.seq_id);
        if (last == last_.end() || last->second.first != step.step_id - 1) {
          return absl::InternalError(absl::StrCat("step ", step.step_id, ": sequence ",
                                                  scheduled.seq_id, " has a stale placeholder"));
        }
        input = last->second.second;
        ++placeholders_;
      }
      if (!scheduled.sample) continue;
      const int32_t token = NextToken(input, scheduled.end - 1);
      last_[scheduled.seq_id] = {step.step_id, token};
      outcome.tokens.push_back({scheduled.seq_id, token, {}});
    }
    return outcome;
  }
  absl::Status health() const override { return absl::OkStatus(); }
  int placeholders() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return placeholders_;
  }

 private:
  const absl::Duration step_time_;
  mutable std::mutex mutex_;
  absl::flat_hash_map<uint64_t, std::pair<uint64_t, int32_t>> last_;  // step, token
  int placeholders_ = 0;
};

struct Choice {
  std::vector<int32_t> tokens;
  FinishReason finish = FinishReason::kNone;
  bool operator==(const Choice& other) const {
    return tokens == other.tokens && finish == other.finish;
  }
};

// Everything the handle delivers, by choice, until the request is done (or 30 s pass).
std::map<int, Choice> Collect(RequestHandle& handle) {
  std::map<int, Choice> choices;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    std::vector<GenerationChunk> chunks;
    if (!handle.TryTake(&chunks)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    for (const GenerationChunk& chunk : chunks) {
      EXPECT_TRUE(chunk.error.ok()) << chunk.error;
      Choice& choice = choices[chunk.choice_index];
      choice.tokens.insert(choice.tokens.end(), chunk.token_ids.begin(), chunk.token_ids.end());
      if (chunk.finish_reason != FinishReason::kNone) choice.finish = chunk.finish_reason;
      if (chunk.request_done || !chunk.error.ok()) return choices;
    }
  }
  ADD_FAILURE() << "request " << handle.request_id() << " did not finish";
  return choices;
}

struct RunResult {
  std::vector<std::map<int, Choice>> requests;
  EngineStats stats;
  int placeholders = 0;
};

RunResult RunWorkload(bool async) {
  SchedulerConfig config;
  config.async_scheduling = async;
  config.max_num_seqs = 8;
  config.max_num_batched_tokens = 64;
  config.max_model_len = 256;
  config.blocks.block_size = 4;
  config.blocks.num_blocks = 48;  // short of what 8 running sequences grow to: preemptions
  config.enable_prefix_caching = true;
  ModelLimits limits;
  limits.vocab_size = 100;
  limits.max_model_len = 256;
  limits.eos_token_ids = {kEos};
  ModelLikeExecutor executor;
  Engine engine(config, limits, &executor);
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (int r = 0; r < 40; ++r) {
    RequestSpec spec;
    spec.request_id = absl::StrCat("request-", r);
    spec.key = spec.request_id;
    for (int i = 0; i < 5 + r % 11; ++i) spec.prompt_token_ids.push_back(10 + (r * 3 + i) % 50);
    spec.max_tokens = 1 + (r * 7) % 40;
    spec.ignore_eos = r % 5 == 0;
    if (r % 6 == 1) {  // parallel samples: the group forks after its prompt (never ahead)
      spec.n = 2;
      spec.best_of = 2;
      spec.sampling.temperature = 1.0f;
    }
    spec.sampling.seed = r;
    handles.push_back(engine.Submit(std::move(spec)));
  }
  engine.Start();  // with every request queued: the same steps in every run
  RunResult result;
  for (const std::shared_ptr<RequestHandle>& handle : handles) {
    result.requests.push_back(Collect(*handle));
  }
  result.stats = engine.stats();
  result.placeholders = executor.placeholders();
  engine.Stop();
  return result;
}

TEST(EngineAsyncTest, SendingStepsAheadChangesNoOutput) {
  const RunResult sync = RunWorkload(/*async=*/false);
  const RunResult async = RunWorkload(/*async=*/true);
  ASSERT_EQ(sync.requests.size(), async.requests.size());
  int stopped = 0;
  int length = 0;
  uint64_t delivered = 0;
  for (size_t r = 0; r < sync.requests.size(); ++r) {
    EXPECT_EQ(sync.requests[r], async.requests[r]) << "request " << r;
    for (const auto& [index, choice] : sync.requests[r]) {
      stopped += choice.finish == FinishReason::kStop;
      length += choice.finish == FinishReason::kLength;
      delivered += choice.tokens.size();
    }
  }
  // The tokens counted as generated are the ones delivered: not the one a step sent ahead
  // computes past a stop.
  EXPECT_EQ(sync.stats.tokens_generated, delivered);
  EXPECT_EQ(async.stats.tokens_generated, delivered);
  // Both stops were exercised, and pressure on the pool preempted sequences.
  EXPECT_GT(stopped, 3);
  EXPECT_GT(length, 3);
  EXPECT_GT(sync.stats.counters.num_preemptions, 0);
  EXPECT_GT(async.stats.counters.num_preemptions, 0);
  EXPECT_EQ(sync.stats.num_steps_ahead, 0u);
  EXPECT_EQ(sync.placeholders, 0);
  // Most steps went ahead, and the worker filled their placeholders.
  EXPECT_GT(async.stats.num_steps_ahead, async.stats.steps / 2);
  EXPECT_GT(async.placeholders, 100);
}

TEST(EngineAsyncTest, AbortWhileAStepIsAheadEndsTheRequest) {
  SchedulerConfig config;
  config.max_model_len = 4096;
  config.blocks.num_blocks = 1024;
  ModelLimits limits;
  limits.vocab_size = 100;
  limits.max_model_len = 4096;
  // 4,000 steps of 0.5 ms: seconds of margin for the abort to land before the request ends.
  ModelLikeExecutor executor(absl::Microseconds(500));
  Engine engine(config, limits, &executor);
  engine.Start();
  RequestSpec spec;
  spec.request_id = "long";
  spec.key = "long";
  spec.prompt_token_ids = {11, 12, 13};
  spec.max_tokens = 4000;
  spec.ignore_eos = true;
  std::shared_ptr<RequestHandle> handle = engine.Submit(spec);
  while (engine.stats().num_steps_ahead < 20) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  engine.Abort("long");
  const std::map<int, Choice> choices = Collect(*handle);
  ASSERT_EQ(choices.size(), 1u);
  EXPECT_EQ(choices.at(0).finish, FinishReason::kAbort);
  // The engine goes on: a new request completes.
  spec.request_id = spec.key = "after";
  spec.max_tokens = 5;
  std::shared_ptr<RequestHandle> after = engine.Submit(spec);
  const std::map<int, Choice> done = Collect(*after);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done.at(0).tokens.size(), 5u);
  EXPECT_EQ(done.at(0).finish, FinishReason::kLength);
  engine.Stop();
}

}  // namespace
}  // namespace pagedllm::coordinator
