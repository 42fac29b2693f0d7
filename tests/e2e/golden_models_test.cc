// Small random Llama models (tests/data/models, made by tools/make_golden_models.py with
// Hugging Face transformers in float32) through the whole cluster at every tp size each model's
// head counts allow: greedy tokens equal, and the chosen and top-5 logprobs within 1e-4.
// Covers MHA, GQA, MQA (KV heads replicated when tp > kv heads), tied embeddings with a vocab
// that does not divide by tp, Llama-3 rope scaling and head_dim * heads != hidden.
#include <gtest/gtest.h>

#include <cmath>

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

std::string ModelDir(const std::string& model) {
  return SourceDir() + "/tests/data/models/" + model;
}

std::vector<ModelAndTp> AllCases() {
  std::vector<ModelAndTp> cases;
  for (const char* model : {"mha-untied", "gqa-tied", "mqa-llama3-rope", "gqa-wide-head"}) {
    const nlohmann::json golden = LoadJson(ModelDir(model) + "/golden.json");
    for (int tp : golden["tp_sizes"].get<std::vector<int>>()) cases.push_back({model, tp});
  }
  return cases;
}

class GoldenModelsTest : public ::testing::TestWithParam<ModelAndTp> {};

TEST_P(GoldenModelsTest, MatchesTransformers) {
  const ModelAndTp& param = GetParam();
  const nlohmann::json golden = LoadJson(ModelDir(param.model) + "/golden.json");
  auto cluster = Cluster::Start(ClusterOptions(ModelDir(param.model), param.tp));
  ASSERT_TRUE(cluster.ok()) << cluster.status();

  std::vector<pagedllm::v1::GenerateRequest> requests;
  for (const auto& test_case : golden["cases"]) {
    requests.push_back(GreedyRequest(test_case["prompt_ids"].get<std::vector<int32_t>>(),
                                     golden["max_new_tokens"].get<int>(), /*logprobs=*/5));
  }
  const std::vector<GenerateOutcome> outcomes = GenerateConcurrently((*cluster)->stub(), requests);
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const auto& test_case = golden["cases"][i];
    SCOPED_TRACE(absl::StrCat(param.model, " tp=", param.tp, " prompt ", i, " (",
                              test_case["prompt_ids"].size(), " tokens)"));
    ASSERT_TRUE(outcomes[i].status.ok()) << outcomes[i].status.error_message() << "\n"
                                         << (*cluster)->ReadLog();
    const auto expected = test_case["continuation_ids"].get<std::vector<int32_t>>();
    const auto chosen = test_case["chosen_logprobs"].get<std::vector<double>>();
    ASSERT_EQ(outcomes[i].token_ids, expected);
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
  const absl::Status stopped = (*cluster)->Stop();
  EXPECT_TRUE(stopped.ok()) << stopped << "\n" << (*cluster)->ReadLog();
}

INSTANTIATE_TEST_SUITE_P(AllModels, GoldenModelsTest, ::testing::ValuesIn(AllCases()),
                         [](const ::testing::TestParamInfo<ModelAndTp>& info) {
                           std::string name = absl::StrCat(info.param.model, "_tp", info.param.tp);
                           for (char& c : name) c = std::isalnum(c) ? c : '_';
                           return name;
                         });

}  // namespace
}  // namespace pagedllm::testing
