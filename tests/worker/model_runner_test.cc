// ModelRunner with steps launched ahead (async scheduling on the worker): the bundled model on
// the CPU device, two sequences decoding for several steps. Each step after the first is
// launched before the step before it is finished, its input token a placeholder the device fills
// from the step before's samples. The tokens, logprobs and top logprobs must be exactly those of
// steps run one at a time with the tokens spelled out, eagerly and through decode graphs, greedy
// and sampled. On the CPU a launch computes at once, so a step whose read-back or upload buffers
// were shared with the next one's would come out wrong here.
#include "worker/model_runner.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_device.h"
#include "kernels/cpu/thread_pool.h"
#include "proto/worker_protocol.h"
#include "worker/model/model_loader.h"

namespace pagedllm::worker {
namespace {

namespace wv1 = pagedllm::worker::v1;

constexpr int kBlockSize = 4;
constexpr int kNumBlocks = 64;
constexpr int kSteps = 12;

// One rank: the collectives are copies.
class SingleRank final : public parallel::Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  absl::Status AllReduceSum(const kernels::Tensor&) override { return absl::OkStatus(); }
  absl::Status AllGather(const kernels::Tensor& input, const kernels::Tensor& output) override {
    input.device()->CopyDeviceToDevice(output.raw_data(), input.raw_data(), input.bytes());
    return absl::OkStatus();
  }
  absl::Status Barrier() override { return absl::OkStatus(); }
};

// The CPU backend, except that one Linear call (the `fail_at`-th, counting from 1) fails as a
// CUDA op does when it cannot run: it records the failure and writes nothing.
class FailingLinearOps final : public kernels::cpu::CpuOps {
 public:
  using CpuOps::CpuOps;
  void Linear(const kernels::Tensor& x, const kernels::Tensor& weight,
              const kernels::Tensor& y) override {
    if (++calls == fail_at) {
      RecordFailure(absl::ResourceExhaustedError("Linear: no memory for the workspace"));
      return;
    }
    CpuOps::Linear(x, weight, y);
  }
  int calls = 0;
  int fail_at = 0;  // 0: never
};

class FailingLinearDevice final : public kernels::cpu::CpuDevice {
 public:
  FailingLinearDevice() : CpuDevice(1), failing_(this, &pool_) {}
  kernels::Ops& ops() override { return failing_; }
  FailingLinearOps& failing() { return failing_; }

 private:
  kernels::cpu::ThreadPool pool_{1};
  FailingLinearOps failing_;
};

struct RunnerOnCpu {
  std::unique_ptr<kernels::Device> device = std::make_unique<FailingLinearDevice>();
  SingleRank comm;
  std::unique_ptr<ModelRunner> runner;
};

std::unique_ptr<RunnerOnCpu> MakeRunner(int decode_graph_max_batch) {
  auto setup = std::make_unique<RunnerOnCpu>();
  absl::StatusOr<LoadedModel> loaded =
      LoadLlamaModel(std::string(PAGEDLLM_SOURCE_DIR) + "/models/pagedllm-tiny-py", *setup->device,
                     setup->comm, LoadOptions());
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  if (!loaded.ok()) return nullptr;
  absl::StatusOr<KvCache> cache =
      KvCache::Create(*setup->device, loaded->cache_dtype, loaded->num_layers, kNumBlocks,
                      kBlockSize, loaded->num_kv_heads_local, loaded->head_dim);
  EXPECT_TRUE(cache.ok()) << cache.status();
  if (!cache.ok()) return nullptr;
  setup->runner = std::make_unique<ModelRunner>(setup->device.get(), &setup->comm,
                                                std::move(loaded->model), *std::move(cache),
                                                /*max_model_len=*/256, decode_graph_max_batch);
  return setup;
}

struct Sequence {
  uint64_t seq_id;
  std::vector<int32_t> prompt;
  wv1::SamplingConfig sampling;
  std::vector<int32_t> blocks;  // its block table so far
  int length = 0;               // tokens computed so far
};

wv1::SamplingConfig Sampling(float temperature, int num_top_logprobs) {
  wv1::SamplingConfig config;
  config.set_temperature(temperature);
  config.set_top_p(temperature > 0 ? 0.95f : 1.0f);
  config.set_seed(1234);
  config.set_num_top_logprobs(num_top_logprobs);
  return config;
}

// Step `step_id` of the workload: the prompts first, then one token per sequence, each either
// spelled out (`last_tokens`) or a placeholder.
wv1::StepInstruction MakeStep(uint64_t step_id, std::vector<Sequence>& sequences,
                              const std::vector<int32_t>* last_tokens) {
  wv1::StepInstruction step;
  step.set_step_id(step_id);
  for (size_t s = 0; s < sequences.size(); ++s) {
    Sequence& seq = sequences[s];
    wv1::SequenceStep* out = step.add_sequences();
    out->set_seq_id(seq.seq_id);
    out->set_first_position(seq.length);
    out->set_sample(true);
    if (step_id == 1) {
      wv1::NewSequence* added = step.add_new_sequences();
      added->set_seq_id(seq.seq_id);
      *added->mutable_sampling() = seq.sampling;
      out->set_reset_block_table(true);
      for (int32_t token : seq.prompt) out->add_token_ids(token);
    } else {
      out->add_token_ids(last_tokens != nullptr ? (*last_tokens)[s] : kSampledTokenPlaceholder);
    }
    const int end = seq.length + out->token_ids_size();
    while (static_cast<int>(seq.blocks.size()) * kBlockSize < end) {
      // Blocks far apart, and each sequence's interleaved with the other's.
      const int32_t block = static_cast<int32_t>(seq.seq_id * 5 + seq.blocks.size());
      seq.blocks.push_back(block);
      out->add_new_block_ids(block);
    }
    seq.length = end;
  }
  return step;
}

std::vector<Sequence> Workload(bool sampled) {
  return {{7, {0, 476, 290, 1489, 272, 1156}, Sampling(0.0f, -1), {}, 0},
          {2, {5, 99, 1000}, sampled ? Sampling(0.8f, 3) : Sampling(0.0f, -1), {}, 0}};
}

std::vector<int32_t> TokensOf(const wv1::StepResult& result) {
  std::vector<int32_t> tokens;
  for (const wv1::SampledToken& token : result.tokens()) tokens.push_back(token.token_id());
  return tokens;
}

absl::StatusOr<wv1::StepResult> ExecuteStep(ModelRunner& runner, const wv1::StepInstruction& step) {
  absl::StatusOr<ModelRunner::LaunchedStep> launched = runner.Launch(step);
  if (!launched.ok()) return launched.status();
  return runner.Finish(*std::move(launched));
}

// Every step's result, each step run to its end before the next, its tokens spelled out.
std::vector<wv1::StepResult> RunOneAtATime(ModelRunner& runner, bool sampled) {
  std::vector<Sequence> sequences = Workload(sampled);
  std::vector<wv1::StepResult> results;
  std::vector<int32_t> last;
  for (uint64_t step_id = 1; step_id <= kSteps; ++step_id) {
    absl::StatusOr<wv1::StepResult> result =
        ExecuteStep(runner, MakeStep(step_id, sequences, step_id == 1 ? nullptr : &last));
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) return results;
    last = TokensOf(*result);
    results.push_back(*std::move(result));
  }
  return results;
}

// The same steps, each launched before the one before it is finished, with placeholders.
std::vector<wv1::StepResult> RunLaunchedAhead(ModelRunner& runner, bool sampled) {
  std::vector<Sequence> sequences = Workload(sampled);
  std::vector<wv1::StepResult> results;
  absl::StatusOr<ModelRunner::LaunchedStep> in_flight =
      runner.Launch(MakeStep(1, sequences, nullptr));
  EXPECT_TRUE(in_flight.ok()) << in_flight.status();
  for (uint64_t step_id = 2; step_id <= kSteps + 1 && in_flight.ok(); ++step_id) {
    absl::StatusOr<ModelRunner::LaunchedStep> next;
    if (step_id <= kSteps) {
      next = runner.Launch(MakeStep(step_id, sequences, nullptr));
      EXPECT_TRUE(next.ok()) << next.status();
    }
    absl::StatusOr<wv1::StepResult> result = runner.Finish(*std::move(in_flight));
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) break;
    results.push_back(*std::move(result));
    if (step_id > kSteps) break;
    in_flight = std::move(next);
  }
  return results;
}

void ExpectSameResults(const std::vector<wv1::StepResult>& expected,
                       const std::vector<wv1::StepResult>& actual) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_EQ(actual[i].tokens_size(), expected[i].tokens_size()) << "step " << i + 1;
    EXPECT_EQ(actual[i].step_id(), expected[i].step_id());
    for (int t = 0; t < expected[i].tokens_size(); ++t) {
      const wv1::SampledToken& want = expected[i].tokens(t);
      const wv1::SampledToken& got = actual[i].tokens(t);
      EXPECT_EQ(got.seq_id(), want.seq_id()) << "step " << i + 1;
      EXPECT_EQ(got.token_id(), want.token_id()) << "step " << i + 1 << ", row " << t;
      EXPECT_EQ(got.logprob(), want.logprob()) << "step " << i + 1 << ", row " << t;
      ASSERT_EQ(got.top_size(), want.top_size()) << "step " << i + 1 << ", row " << t;
      for (int k = 0; k < want.top_size(); ++k) {
        EXPECT_EQ(got.top(k).token_id(), want.top(k).token_id());
        EXPECT_EQ(got.top(k).logprob(), want.top(k).logprob());
      }
    }
  }
}

class ModelRunnerAheadTest : public ::testing::TestWithParam<std::pair<bool, int>> {};

TEST_P(ModelRunnerAheadTest, LaunchingAheadChangesNoResult) {
  const auto [sampled, graph_batch] = GetParam();
  std::unique_ptr<RunnerOnCpu> one_at_a_time = MakeRunner(graph_batch);
  std::unique_ptr<RunnerOnCpu> ahead = MakeRunner(graph_batch);
  ASSERT_TRUE(one_at_a_time != nullptr && ahead != nullptr);
  const std::vector<wv1::StepResult> expected = RunOneAtATime(*one_at_a_time->runner, sampled);
  const std::vector<wv1::StepResult> actual = RunLaunchedAhead(*ahead->runner, sampled);
  ExpectSameResults(expected, actual);
  // The workload means something: two sequences every step, a sampled one with its logprobs.
  ASSERT_EQ(expected.size(), static_cast<size_t>(kSteps));
  for (const wv1::StepResult& result : expected) ASSERT_EQ(result.tokens_size(), 2);
  if (sampled) {
    EXPECT_EQ(expected.back().tokens(1).top_size(), 3);
    EXPECT_LT(expected.back().tokens(1).logprob(), 0.0f);
  }
  // Greedy decoding of the tiny model does not repeat one token forever.
  std::vector<int32_t> first_sequence;
  for (const wv1::StepResult& result : expected)
    first_sequence.push_back(result.tokens(0).token_id());
  EXPECT_NE(std::count(first_sequence.begin(), first_sequence.end(), first_sequence[0]),
            static_cast<long>(first_sequence.size()));
}

INSTANTIATE_TEST_SUITE_P(GreedyAndSampledEagerAndGraphs, ModelRunnerAheadTest,
                         ::testing::Values(std::make_pair(false, 0), std::make_pair(true, 0),
                                           std::make_pair(false, 8), std::make_pair(true, 8)));

TEST(ModelRunnerTest, AnOpThatCannotRunFailsItsStepNotTheProcess) {
  std::unique_ptr<RunnerOnCpu> setup = MakeRunner(0);
  ASSERT_TRUE(setup != nullptr);
  auto& ops = static_cast<FailingLinearDevice&>(*setup->device).failing();
  std::vector<Sequence> sequences = Workload(false);
  ASSERT_TRUE(ExecuteStep(*setup->runner, MakeStep(1, sequences, nullptr)).ok());
  ops.fail_at = ops.calls + 3;  // a Linear in the first layer of step 2
  absl::StatusOr<ModelRunner::LaunchedStep> second =
      setup->runner->Launch(MakeStep(2, sequences, nullptr));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(second.status().message(), "step 2: Linear: no memory for the workspace");
  // Taken once: the failure does not stay to fail the step after.
  EXPECT_TRUE(setup->device->ops().TakeFailure().ok());
}

TEST(ModelRunnerTest, APlaceholderWithoutASampleBeforeIsRefused) {
  std::unique_ptr<RunnerOnCpu> setup = MakeRunner(0);
  ASSERT_TRUE(setup != nullptr);
  std::vector<Sequence> sequences = Workload(false);
  wv1::StepInstruction first = MakeStep(1, sequences, nullptr);
  first.mutable_sequences(0)->set_sample(false);
  ASSERT_TRUE(ExecuteStep(*setup->runner, first).ok());
  absl::StatusOr<ModelRunner::LaunchedStep> second =
      setup->runner->Launch(MakeStep(2, sequences, nullptr));
  EXPECT_FALSE(second.ok());
  EXPECT_NE(std::string(second.status().message()).find("sampled none there"), std::string::npos)
      << second.status();
}

}  // namespace
}  // namespace pagedllm::worker
