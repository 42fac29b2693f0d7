// The bundled model (models/pagedllm-tiny-py) through the whole cluster, against the greedy
// continuations Hugging Face transformers produced (golden.json, float32): tp=1 and tp=2, all
// prompts in flight together, and again with a KV pool too small for all of them (preemption
// by recomputation must not change a token).
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tests/e2e/cluster.h"
#include "tests/e2e/e2e_util.h"

namespace pagedllm::testing {
namespace {

std::string ModelDir() { return SourceDir() + "/models/pagedllm-tiny-py"; }

void ExpectGolden(const ClusterOptions& options, bool expect_preemption) {
  const nlohmann::json golden = LoadJson(ModelDir() + "/golden.json");
  auto cluster = Cluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();

  std::vector<pagedllm::v1::GenerateRequest> requests;
  for (const auto& test_case : golden["cases"]) {
    requests.push_back(GreedyRequest(test_case["prompt_ids"].get<std::vector<int32_t>>(),
                                     golden["max_new_tokens"].get<int>()));
  }
  const std::vector<GenerateOutcome> outcomes = GenerateConcurrently((*cluster)->stub(), requests);
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const auto& test_case = golden["cases"][i];
    SCOPED_TRACE(absl::StrCat("prompt ", i, " ", test_case["prompt"].get<std::string>()));
    ASSERT_TRUE(outcomes[i].status.ok()) << outcomes[i].status.error_message() << "\n"
                                         << (*cluster)->ReadLog();
    const auto expected = test_case["continuation_ids"].get<std::vector<int32_t>>();
    const auto margins = test_case["margins"].get<std::vector<double>>();
    ASSERT_EQ(outcomes[i].token_ids.size(), expected.size());
    for (size_t step = 0; step < expected.size(); ++step) {
      ASSERT_EQ(outcomes[i].token_ids[step], expected[step])
          << "first difference at step " << step << " (golden top-1 margin " << margins[step]
          << " nats)";
    }
    EXPECT_EQ(outcomes[i].finish_reason, pagedllm::v1::FINISH_REASON_LENGTH);
  }
  absl::StatusOr<pagedllm::v1::ServerStats> stats = (*cluster)->WaitForAllBlocksFree();
  ASSERT_TRUE(stats.ok()) << stats.status();
  if (expect_preemption) {
    EXPECT_GT(stats->num_preemptions(), 0u);
  }
  const absl::Status stopped = (*cluster)->Stop();
  EXPECT_TRUE(stopped.ok()) << stopped << "\n" << (*cluster)->ReadLog();
}

TEST(BundledModelTest, GreedyMatchesTransformersTp1) {
  ExpectGolden(ClusterOptions(ModelDir(), 1), false);
}

TEST(BundledModelTest, GreedyMatchesTransformersTp2) {
  ExpectGolden(ClusterOptions(ModelDir(), 2), false);
}

TEST(BundledModelTest, PreemptionByRecomputeKeepsTokensTp2) {
  // 5 sequences of 74 tokens need 5 blocks of 16 each; 9 blocks hold fewer than two of them.
  ClusterOptions options(ModelDir(), 2);
  options.num_kv_blocks = 9;
  ExpectGolden(options, true);
}

TEST(BundledModelTest, SmallBlocksAndChunkedPrefillTp1) {
  // Block size 4 and a 8-token step budget: every prompt is prefilled in chunks.
  ClusterOptions options(ModelDir(), 1);
  options.block_size = 4;
  options.extra_flags = {"--max_num_batched_tokens=8"};
  ExpectGolden(options, false);
}

TEST(BundledModelTest, DecodeGraphPathTp2) {
  // Decode steps through DecodeGraphs (padded buckets, static inputs); on the CPU the "graph"
  // re-runs the forward pass, on CUDA it is a captured CUDA graph.
  ClusterOptions options(ModelDir(), 2);
  options.extra_flags = {"--decode_graphs=on"};
  ExpectGolden(options, false);
}

TEST(BundledModelTest, StepsLaunchedAheadTp2) {
  // Each worker launches a step sent ahead before it finishes the one before (the CPU's steps
  // end as they are launched, so `auto` never does), through decode graphs and eagerly: the
  // placeholders are filled on the device from the step before's tokens.
  for (const char* graphs : {"--decode_graphs=on", "--decode_graphs=off"}) {
    SCOPED_TRACE(graphs);
    ClusterOptions options(ModelDir(), 2);
    options.extra_flags = {"--launch_ahead=always", graphs};
    ExpectGolden(options, false);
  }
}

// Seeded sampling (SampleRows on the workers): the same seed gives the same tokens run after run
// and at tp 1 and 2 (the op reads the vocab-parallel logits in any shard layout and draws from
// Philox keyed by seed, draw and token); other seeds give other tokens.
std::vector<int32_t> SampleWithSeed(Cluster& cluster, uint64_t seed) {
  pagedllm::v1::GenerateRequest request = GreedyRequest({0, 476, 290, 1489, 272, 1156}, 32);
  request.mutable_sampling()->set_temperature(1.0f);
  request.mutable_sampling()->set_top_k(50);
  request.mutable_sampling()->set_top_p(0.95f);
  request.mutable_sampling()->set_seed(seed);
  request.mutable_sampling()->set_ignore_eos(true);
  const GenerateOutcome outcome = Generate(cluster.stub(), request);
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  EXPECT_EQ(outcome.token_ids.size(), 32u);
  return outcome.token_ids;
}

TEST(BundledModelTest, SeededSamplingRepeatsAcrossRunsAndTensorParallelism) {
  std::vector<std::vector<int32_t>> by_tp;
  for (int tp : {1, 2}) {
    auto cluster = Cluster::Start(ClusterOptions(ModelDir(), tp));
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    const std::vector<int32_t> first = SampleWithSeed(**cluster, 1234);
    EXPECT_EQ(SampleWithSeed(**cluster, 1234), first) << "tp " << tp << ": the same seed again";
    int differing = 0;
    for (uint64_t other : {1ull, 2ull, 3ull})
      differing += SampleWithSeed(**cluster, other) != first;
    EXPECT_GE(differing, 2) << "tp " << tp << ": other seeds should give other tokens";
    by_tp.push_back(first);
    EXPECT_TRUE((*cluster)->Stop().ok());
  }
  EXPECT_EQ(by_tp[0], by_tp[1]) << "seed 1234 at tp 1 and tp 2";
}

}  // namespace
}  // namespace pagedllm::testing
