// Top-k, top-p and min-p end to end: from the public SamplingParams through the coordinator and
// the worker protocol to the workers' sampler. At temperature 1.0, each filter alone set so tight
// that only the most likely token survives (top_k 1, top_p 1e-7, min_p 1.0) must reproduce the
// greedy golden continuations of a small golden model (tests/data/models, every step's top-1
// margin >= 0.05 nats, so the most likely token is unique) for every seed, at tp 1 and 2. The
// control: the same seeds with no filter leave the greedy path, so a server that dropped a filter
// on the way would fail.
#include <gtest/gtest.h>

#include <functional>

#include "absl/strings/str_cat.h"
#include "tests/e2e/cluster.h"
#include "tests/e2e/e2e_util.h"

namespace pagedllm::testing {
namespace {

constexpr char kModel[] = "mha-untied";
constexpr uint64_t kSeeds[] = {1, 7, 4242};

struct Filter {
  std::string name;
  std::function<void(pagedllm::v1::SamplingParams*)> apply;
};

// The first entry sets nothing: the control.
std::vector<Filter> Filters() {
  return {
      {"no filter", [](pagedllm::v1::SamplingParams*) {}},
      {"top_k=1", [](pagedllm::v1::SamplingParams* p) { p->set_top_k(1); }},
      {"min_p=1.0", [](pagedllm::v1::SamplingParams* p) { p->set_min_p(1.0f); }},
      {"top_p=1e-7", [](pagedllm::v1::SamplingParams* p) { p->set_top_p(1e-7f); }},
  };
}

class SamplingFiltersTest : public ::testing::TestWithParam<int> {};

TEST_P(SamplingFiltersTest, EachTightFilterAloneGivesTheGreedyTokens) {
  const int tp = GetParam();
  const nlohmann::json golden = LoadJson(GoldenModelDir(kModel) + "/golden.json");
  const std::vector<std::vector<int32_t>> prompts = GoldenPrompts(golden);
  const int max_tokens = golden["max_new_tokens"].get<int>();
  const std::vector<Filter> filters = Filters();
  auto cluster = Cluster::Start(ClusterOptions(GoldenModelDir(kModel), tp));
  ASSERT_TRUE(cluster.ok()) << cluster.status();

  // Every (filter, seed, prompt) at once, in that order.
  std::vector<pagedllm::v1::GenerateRequest> requests;
  for (const Filter& filter : filters) {
    for (uint64_t seed : kSeeds) {
      for (const std::vector<int32_t>& prompt : prompts) {
        requests.push_back(SampledRequest(prompt, max_tokens, /*temperature=*/1.0f, seed));
        filter.apply(requests.back().mutable_sampling());
      }
    }
  }
  const std::vector<GenerateOutcome> outcomes = GenerateConcurrently((*cluster)->stub(), requests);

  size_t next = 0;
  for (const Filter& filter : filters) {
    const bool control = &filter == &filters.front();
    for (uint64_t seed : kSeeds) {
      bool all_greedy = true;
      for (size_t i = 0; i < prompts.size(); ++i, ++next) {
        SCOPED_TRACE(absl::StrCat(kModel, " tp=", tp, " ", filter.name, " seed ", seed, " prompt ",
                                  i, " (", prompts[i].size(), " tokens)"));
        const GenerateOutcome& outcome = outcomes[next];
        ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message() << "\n"
                                         << (*cluster)->ReadLog();
        ASSERT_EQ(outcome.token_ids.size(), static_cast<size_t>(max_tokens));
        const auto greedy = golden["cases"][i]["continuation_ids"].get<std::vector<int32_t>>();
        all_greedy = all_greedy && outcome.token_ids == greedy;
        if (!control) {
          EXPECT_EQ(outcome.token_ids, greedy);
        }
      }
      if (control) {
        EXPECT_FALSE(all_greedy) << "tp=" << tp << " seed " << seed
                                 << ": with no filter every prompt followed the greedy path, so "
                                    "the filtered runs of this seed show nothing";
      }
    }
  }

  auto stats = (*cluster)->WaitForAllBlocksFree();
  ASSERT_TRUE(stats.ok()) << stats.status();
  const absl::Status stopped = (*cluster)->Stop();
  EXPECT_TRUE(stopped.ok()) << stopped << "\n" << (*cluster)->ReadLog();
}

INSTANTIATE_TEST_SUITE_P(TensorParallel, SamplingFiltersTest, ::testing::Values(1, 2),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return absl::StrCat("Tp", info.param);
                         });

}  // namespace
}  // namespace pagedllm::testing
