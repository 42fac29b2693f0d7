// A seed fixes a request's tokens whatever the scheduler does with it. The same seeded requests
// (temperature 0.8, top-p 0.9, 24 tokens, all in flight together) on a golden model at tp 2 give
// the same tokens on a plain cluster, on one whose KV pool is so small that sequences are
// preempted and recomputed (the sampler's draw counter must neither restart nor skip), and on one
// whose 16-token step budget prefills every longer prompt in chunks (only the last chunk draws).
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "absl/strings/str_cat.h"
#include "tests/e2e/cluster.h"
#include "tests/e2e/e2e_util.h"

namespace pagedllm::testing {
namespace {

constexpr char kModel[] = "gqa-tied";
constexpr int kTp = 2;
constexpr int kMaxTokens = 24;
constexpr uint64_t kSeeds[] = {11, 12};
constexpr int kChunkTokens = 16;

// One request: a golden prompt, or a copy of it whose first token differs (so that no two
// requests share a prefix the server could cache: the block pressure below counts on it), with
// a seed.
struct SeededCase {
  size_t golden_case;  // index into golden.json's cases
  bool copy;
  uint64_t seed;
  std::vector<int32_t> prompt;
};

// Every golden prompt (1 to 300 tokens, shortest first) and its copy, each with its own seed:
// the order the requests are sent in.
std::vector<SeededCase> Cases(const nlohmann::json& golden) {
  std::vector<SeededCase> cases;
  const std::vector<std::vector<int32_t>> prompts = GoldenPrompts(golden);
  for (size_t i = 0; i < prompts.size(); ++i) {
    cases.push_back({i, false, kSeeds[0], prompts[i]});
    cases.push_back({i, true, kSeeds[1], prompts[i]});
    // Ids 0..2 are special; the golden prompts draw from [3, vocab_size).
    cases.back().prompt[0] = prompts[i][0] == 3 ? 4 : 3;
  }
  return cases;
}

using Tokens = std::vector<std::vector<int32_t>>;  // per request

struct ClusterRun {
  std::vector<Tokens> rounds;       // each round's tokens
  pagedllm::v1::ServerStats stats;  // after the last round, once every block is free again
};

// Starts a cluster and sends all requests at once, round after round, until `enough` says the
// stats show what the run is for, or after `max_rounds`; then stops the cluster.
void RunRounds(const ClusterOptions& options,
               const std::vector<pagedllm::v1::GenerateRequest>& requests, int max_rounds,
               const std::function<bool(const pagedllm::v1::ServerStats&)>& enough,
               ClusterRun* run) {
  auto cluster = Cluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  for (int round = 0; round < max_rounds; ++round) {
    const std::vector<GenerateOutcome> outcomes =
        GenerateConcurrently((*cluster)->stub(), requests);
    Tokens& tokens = run->rounds.emplace_back();
    for (size_t i = 0; i < outcomes.size(); ++i) {
      ASSERT_TRUE(outcomes[i].status.ok())
          << "request " << i << ": " << outcomes[i].status.error_message() << "\n"
          << (*cluster)->ReadLog();
      ASSERT_EQ(outcomes[i].token_ids.size(), static_cast<size_t>(kMaxTokens)) << "request " << i;
      tokens.push_back(outcomes[i].token_ids);
    }
    auto stats = (*cluster)->WaitForAllBlocksFree();
    ASSERT_TRUE(stats.ok()) << stats.status();
    run->stats = *stats;
    if (enough(run->stats)) break;
  }
  const absl::Status stopped = (*cluster)->Stop();
  EXPECT_TRUE(stopped.ok()) << stopped << "\n" << (*cluster)->ReadLog();
}

bool OneRound(const pagedllm::v1::ServerStats&) { return true; }

TEST(SeededSamplingTest, SameTokensWithPreemptionAndChunkedPrefill) {
  const nlohmann::json golden = LoadJson(GoldenModelDir(kModel) + "/golden.json");
  const std::vector<SeededCase> cases = Cases(golden);
  std::vector<pagedllm::v1::GenerateRequest> requests;
  for (const SeededCase& c : cases) {
    requests.push_back(SampledRequest(c.prompt, kMaxTokens, /*temperature=*/0.8f, c.seed));
    requests.back().mutable_sampling()->set_top_p(0.9f);
  }

  ClusterRun plain;
  RunRounds(ClusterOptions(GoldenModelDir(kModel), kTp), requests, 1, OneRound, &plain);
  if (HasFatalFailure()) return;
  const Tokens& expected = plain.rounds[0];
  EXPECT_EQ(plain.stats.num_preemptions(), 0u);
  // The requests are really sampled: golden prompts leave their greedy path.
  int num_off_greedy = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    if (cases[i].copy) continue;
    const auto greedy =
        golden["cases"][cases[i].golden_case]["continuation_ids"].get<std::vector<int32_t>>();
    num_off_greedy += !std::equal(greedy.begin(), greedy.end(), expected[i].begin());
  }
  EXPECT_GT(num_off_greedy, 0) << "every golden prompt followed its greedy path";

  // Blocks of 4 tokens: the requests need ceil((prompt + 24) / 4) = 7, 8, 15, 44 and 81 blocks.
  // A pool of 81 holds the longest alone, and the prompts up to the first 150-token one at
  // once, but not what they grow to. Whether a round preempts depends on when the requests
  // reach the scheduler, so a round without preemption is sent again (each round's tokens count).
  ClusterOptions preempting(GoldenModelDir(kModel), kTp);
  preempting.block_size = 4;
  preempting.num_kv_blocks = 81;
  ClusterRun preempted;
  RunRounds(
      preempting, requests, 3,
      [](const pagedllm::v1::ServerStats& stats) { return stats.num_preemptions() > 0; },
      &preempted);
  if (HasFatalFailure()) return;
  EXPECT_GT(preempted.stats.num_preemptions(), 0u)
      << "the small KV pool preempted nothing in " << preempted.rounds.size() << " rounds";

  ClusterOptions chunking(GoldenModelDir(kModel), kTp);
  chunking.extra_flags = {absl::StrCat("--max_num_batched_tokens=", kChunkTokens)};
  ClusterRun chunked;
  RunRounds(chunking, requests, 1, OneRound, &chunked);
  if (HasFatalFailure()) return;
  // The budget was applied: the longest (300-token) prompt alone takes ceil(300 / 16) steps to
  // sample its first token, then one step for each other token.
  size_t longest = 0;
  for (const SeededCase& c : cases) longest = std::max(longest, c.prompt.size());
  EXPECT_GE(chunked.stats.num_steps(),
            (longest + kChunkTokens - 1) / kChunkTokens + kMaxTokens - 1);

  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("golden prompt ", cases[i].golden_case,
                              cases[i].copy ? " (copy)" : "", ", ", cases[i].prompt.size(),
                              " tokens, seed ", cases[i].seed));
    for (size_t round = 0; round < preempted.rounds.size(); ++round) {
      EXPECT_EQ(preempted.rounds[round][i], expected[i]) << "with preemption, round " << round;
    }
    EXPECT_EQ(chunked.rounds[0][i], expected[i]) << "with chunked prefill";
  }
}

}  // namespace
}  // namespace pagedllm::testing
