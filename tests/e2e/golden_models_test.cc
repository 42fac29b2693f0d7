// Small random Llama models (tests/data/models, made by tools/make_golden_models.py with
// Hugging Face transformers in float32) through the whole cluster at every tp size each model's
// head counts allow: greedy tokens equal, and the chosen and top-5 logprobs within 1e-4.
// Covers MHA, GQA, MQA (KV heads replicated when tp > kv heads), tied embeddings with a vocab
// that does not divide by tp (odd-vocab-tied: 1021 ids, padded at tp 2 and 4), Llama-3 rope
// scaling and head_dim * heads != hidden. Two models
// again with a 64-token step budget, so that the 150- and 300-token prompts are prefilled in
// chunks (attention over the cached prefix of the earlier chunks).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <ostream>

#include "absl/strings/str_cat.h"
#include "tests/e2e/cluster.h"
#include "tests/e2e/e2e_util.h"

namespace pagedllm::testing {
namespace {

// float32 through a few layers differs from transformers only in summation order: ~1e-6.
constexpr double kLogprobTolerance = 1e-4;

struct ModelAndTp {
  std::string model;
  int tp;
};

std::vector<ModelAndTp> AllCases() {
  std::vector<ModelAndTp> cases;
  for (const char* model :
       {"mha-untied", "gqa-tied", "mqa-llama3-rope", "gqa-wide-head", "odd-vocab-tied"}) {
    const nlohmann::json golden = LoadJson(GoldenModelDir(model) + "/golden.json");
    for (int tp : golden["tp_sizes"].get<std::vector<int>>()) cases.push_back({model, tp});
  }
  return cases;
}

void PrintTo(const ModelAndTp& param, std::ostream* os) {
  *os << param.model << " tp=" << param.tp;
}

std::string CaseName(const ::testing::TestParamInfo<ModelAndTp>& info) {
  std::string name = absl::StrCat(info.param.model, "_tp", info.param.tp);
  for (char& c : name) c = std::isalnum(c) ? c : '_';
  return name;
}

// All golden prompts in flight together, `num_copies` times over: greedy tokens as golden.json
// says, and in the first copy (which asks for 5 top logprobs) the chosen and top-5 logprobs too;
// the other copies ask for none (the workers take the argmax path for steps of only those).
// Returns the server's stats once every block is free again.
void ExpectMatchesTransformers(const ModelAndTp& param, std::vector<std::string> extra_flags,
                               int num_copies, pagedllm::v1::ServerStats* stats_out) {
  const nlohmann::json golden = LoadJson(GoldenModelDir(param.model) + "/golden.json");
  ClusterOptions options(GoldenModelDir(param.model), param.tp);
  options.extra_flags = std::move(extra_flags);
  auto cluster = Cluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();

  const std::vector<std::vector<int32_t>> prompts = GoldenPrompts(golden);
  std::vector<pagedllm::v1::GenerateRequest> requests;
  for (int copy = 0; copy < num_copies; ++copy) {
    for (const std::vector<int32_t>& prompt : prompts) {
      requests.push_back(GreedyRequest(prompt, golden["max_new_tokens"].get<int>(),
                                       /*logprobs=*/copy == 0 ? 5 : -1));
    }
  }
  const std::vector<GenerateOutcome> outcomes = GenerateConcurrently((*cluster)->stub(), requests);
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const auto& test_case = golden["cases"][i % prompts.size()];
    const size_t copy = i / prompts.size();
    SCOPED_TRACE(absl::StrCat(param.model, " tp=", param.tp, " prompt ", i % prompts.size(), " (",
                              test_case["prompt_ids"].size(), " tokens), copy ", copy));
    ASSERT_TRUE(outcomes[i].status.ok()) << outcomes[i].status.error_message() << "\n"
                                         << (*cluster)->ReadLog();
    const auto expected = test_case["continuation_ids"].get<std::vector<int32_t>>();
    const auto chosen = test_case["chosen_logprobs"].get<std::vector<double>>();
    ASSERT_EQ(outcomes[i].token_ids, expected);
    if (copy > 0) continue;
    ASSERT_EQ(outcomes[i].logprobs.size(), expected.size());
    for (size_t step = 0; step < expected.size(); ++step) {
      const auto& got = outcomes[i].logprobs[step];
      EXPECT_NEAR(got.logprob(), chosen[step], kLogprobTolerance) << "step " << step;
      const auto& top5 = test_case["top5"][step];
      ASSERT_EQ(got.top_size(), 5) << "step " << step;
      for (int k = 0; k < 5; ++k) {
        const double want_logprob = top5[k][1].get<double>();
        EXPECT_NEAR(got.top(k).logprob(), want_logprob, kLogprobTolerance)
            << "step " << step << " rank " << k;
        // Ids must agree unless the next rank is a near-tie that float32 may order either way.
        const bool near_tie =
            k + 1 < 5 && std::abs(top5[k + 1][1].get<double>() - want_logprob) < kLogprobTolerance;
        if (!near_tie) {
          EXPECT_EQ(got.top(k).token_id(), top5[k][0].get<int>())
              << "step " << step << " rank " << k;
        }
      }
    }
  }
  auto stats = (*cluster)->WaitForAllBlocksFree();
  ASSERT_TRUE(stats.ok()) << stats.status();
  *stats_out = *stats;
  const absl::Status stopped = (*cluster)->Stop();
  EXPECT_TRUE(stopped.ok()) << stopped << "\n" << (*cluster)->ReadLog();
}

class GoldenModelsTest : public ::testing::TestWithParam<ModelAndTp> {};

TEST_P(GoldenModelsTest, MatchesTransformers) {
  pagedllm::v1::ServerStats stats;
  ExpectMatchesTransformers(GetParam(), {}, /*num_copies=*/1, &stats);
}

INSTANTIATE_TEST_SUITE_P(AllModels, GoldenModelsTest, ::testing::ValuesIn(AllCases()), CaseName);

// Chunked prefill: a step computes at most kChunkTokens tokens, so the 150- and 300-token
// prompts take 3 and 5 steps to prefill, each chunk attending to the KV cache the earlier ones
// wrote, and steps mix chunks of several prompts with decodes. Every prompt twice (with and
// without logprobs: the sampling and the argmax paths). GQA (tied embeddings) and MQA with
// Llama-3 rope scaling (positions past its original 64), at tp 1 and 2.
constexpr int kChunkTokens = 64;

class GoldenModelsChunkedPrefillTest : public ::testing::TestWithParam<ModelAndTp> {};

TEST_P(GoldenModelsChunkedPrefillTest, MatchesTransformers) {
  pagedllm::v1::ServerStats stats;
  ExpectMatchesTransformers(GetParam(), {absl::StrCat("--max_num_batched_tokens=", kChunkTokens)},
                            /*num_copies=*/2, &stats);
  if (HasFatalFailure()) return;
  // The budget was applied: the longest prompt alone needs ceil(300 / 64) = 5 steps to sample
  // its first token and one step for each of its 15 others (unchunked, all prompts prefill in
  // one step: about 16 steps).
  const nlohmann::json golden = LoadJson(GoldenModelDir(GetParam().model) + "/golden.json");
  size_t longest = 0;
  for (const std::vector<int32_t>& prompt : GoldenPrompts(golden)) {
    longest = std::max(longest, prompt.size());
  }
  const uint64_t min_steps =
      (longest + kChunkTokens - 1) / kChunkTokens + golden["max_new_tokens"].get<int>() - 1;
  EXPECT_GE(stats.num_steps(), min_steps);
}

INSTANTIATE_TEST_SUITE_P(TwoModels, GoldenModelsChunkedPrefillTest,
                         ::testing::Values(ModelAndTp{"gqa-tied", 1}, ModelAndTp{"gqa-tied", 2},
                                           ModelAndTp{"mqa-llama3-rope", 1},
                                           ModelAndTp{"mqa-llama3-rope", 2}),
                         CaseName);

}  // namespace
}  // namespace pagedllm::testing
