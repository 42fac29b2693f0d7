#include "coordinator/engine/beam_search.h"

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagedllm::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Scores are float32 sums divided by generated ^ length_penalty: compared to a few ulps.
constexpr double kTolerance = 1e-5;

using Candidates = absl::flat_hash_map<uint64_t, std::vector<BeamCandidate>>;

BeamSearchConfig Config(int width, int num_returned, std::vector<int32_t> stop_token_ids,
                        float length_penalty = 1.0f, bool early_stopping = false,
                        int max_tokens = 16) {
  BeamSearchConfig config;
  config.width = width;
  config.num_returned = num_returned;
  config.stop_token_ids = std::move(stop_token_ids);
  config.length_penalty = length_penalty;
  config.early_stopping = early_stopping;
  config.max_tokens = max_tokens;
  return config;
}

std::vector<std::pair<uint64_t, int32_t>> Next(const BeamSearch::StepResult& result) {
  std::vector<std::pair<uint64_t, int32_t>> next;
  for (const BeamSearch::Extension& e : result.next) next.emplace_back(e.parent_seq_id, e.token_id);
  return next;
}

using Pairs = std::vector<std::pair<uint64_t, int32_t>>;

TEST(BeamSearchTest, NumCandidatesIsTwiceTheWidthOrOnePlusTheStopTokens) {
  EXPECT_EQ(Config(1, 1, {}).num_candidates(), 2);
  EXPECT_EQ(Config(3, 1, {}).num_candidates(), 6);
  EXPECT_EQ(Config(3, 1, {0}).num_candidates(), 6);
  EXPECT_EQ(Config(3, 1, {0, 1}).num_candidates(), 9);
  EXPECT_EQ(Config(4, 2, {0, 1, 2}).num_candidates(), 16);
}

// W = 2, stop token 0, K = 4, length_penalty 1, no early stopping. Three steps, by hand:
//
// step 1, beam 1 (score 0): 5 -0.1 | 6 -0.5 | 0 -0.7 | 7 -1.0 | (8 -2.0 is past K)
//   kept 5, 6, 0, 7; the first W (5, 6) do not hit: running [5] -0.1, [6] -0.5.
// step 2, beam [5]: 0 -0.2 | 9 -0.4 | 10 -1.0 | 11 -1.5   (totals -0.3 -0.5 -1.1 -1.6)
//         beam [6]: 12 -0.05 | 0 -0.1 | 13 -2.0 | 14 -3.0 (totals -0.55 -0.6 -2.5 -3.5)
//   kept: [5]+0 -0.3 (hit), [5]+9 -0.5, [6]+12 -0.55, [6]+0 -0.6 (hit, but 4th: not a
//   hypothesis). Finished: [5 0] -0.3 / 2 = -0.15. Running [5 9] -0.5, [6 12] -0.55.
// step 3, beam [5 9]:  0 -0.1 | 15 -0.3 | 16 -0.9 | 17 -1.0   (totals -0.6 -0.8 -1.4 -1.5)
//         beam [6 12]: 0 -0.02 | 18 -0.2 | 19 -0.7 | 20 -0.8  (totals -0.57 -0.75 -1.25 -1.35)
//   kept: [6 12]+0 -0.57, [5 9]+0 -0.6, [6 12]+18 -0.75, [5 9]+15 -0.8; both of the first W
//   hit: [6 12 0] -0.19, [5 9 0] -0.2; with [5 0] -0.15 the best W are [5 0], [6 12 0].
//   Running would be [6 12 18] -0.75, [5 9 15] -0.8, but -0.75 / 3 = -0.25 cannot beat the worst
//   finished -0.19: done.
class ThreeStepSearch : public ::testing::Test {
 protected:
  ThreeStepSearch() : search_(Config(2, 2, {0}), /*first_seq_id=*/1) {}

  BeamSearch::StepResult Step1() {
    return search_.Step({{1, {{5, -0.1f}, {6, -0.5f}, {0, -0.7f}, {7, -1.0f}, {8, -2.0f}}}}, -1);
  }
  BeamSearch::StepResult Step2() {
    return search_.Step({{1, {{0, -0.2f}, {9, -0.4f}, {10, -1.0f}, {11, -1.5f}}},
                         {2, {{12, -0.05f}, {0, -0.1f}, {13, -2.0f}, {14, -3.0f}}}},
                        -1);
  }
  BeamSearch::StepResult Step3() {
    return search_.Step({{1, {{0, -0.1f}, {15, -0.3f}, {16, -0.9f}, {17, -1.0f}}},
                         {2, {{0, -0.02f}, {18, -0.2f}, {19, -0.7f}, {20, -0.8f}}}},
                        -1);
  }

  BeamSearch search_;
};

TEST_F(ThreeStepSearch, KeepsTheWBestUnfinishedCandidatesAsRunningBeams) {
  EXPECT_THAT(search_.running_seq_ids(), ElementsAre(1u));
  const BeamSearch::StepResult first = Step1();
  EXPECT_FALSE(first.done);
  EXPECT_EQ(Next(first), (Pairs{{1, 5}, {1, 6}}));
  EXPECT_EQ(search_.num_generated(), 1);
  search_.Commit({1, 2});  // beam 1 extended by 5, its fork 2 by 6
  EXPECT_THAT(search_.running_seq_ids(), ElementsAre(1u, 2u));

  const BeamSearch::StepResult second = Step2();
  EXPECT_FALSE(second.done);
  EXPECT_EQ(Next(second), (Pairs{{1, 9}, {2, 12}}));
  search_.Commit({1, 2});
}

TEST_F(ThreeStepSearch, FinishedHypothesesComeOnlyFromTheFirstWKeptCandidates) {
  Step1();
  search_.Commit({1, 2});
  Step2();
  search_.Commit({1, 2});
  // One finished hypothesis ([5 0]); [6 0] was kept 4th and is not one. With n = 2 the running
  // beams fill in: [5 9] (-0.5 / 2) before [6 12] (-0.55 / 2).
  const std::vector<BeamHypothesis> results = search_.Results();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_THAT(results[0].token_ids, ElementsAre(5, 0));
  EXPECT_NEAR(results[0].score, -0.15, kTolerance);
  EXPECT_TRUE(results[0].stopped);
  EXPECT_THAT(results[1].token_ids, ElementsAre(5, 9));
  EXPECT_NEAR(results[1].score, -0.25, kTolerance);
  EXPECT_FALSE(results[1].stopped);
}

TEST_F(ThreeStepSearch, StopsWhenNoRunningBeamCanBeatTheFinishedOnes) {
  Step1();
  search_.Commit({1, 2});
  Step2();
  search_.Commit({1, 2});
  const BeamSearch::StepResult third = Step3();
  EXPECT_TRUE(third.done);
  EXPECT_THAT(third.next, IsEmpty());
  EXPECT_EQ(search_.num_generated(), 3);
  const std::vector<BeamHypothesis> results = search_.Results();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_THAT(results[0].token_ids, ElementsAre(5, 0));
  EXPECT_NEAR(results[0].score, -0.15, kTolerance);
  EXPECT_NEAR(results[0].cumulative_logprob, -0.3, kTolerance);
  EXPECT_THAT(results[1].token_ids, ElementsAre(6, 12, 0));
  EXPECT_NEAR(results[1].score, -0.57 / 3, kTolerance);
  EXPECT_NEAR(results[1].cumulative_logprob, -0.57, kTolerance);
  EXPECT_TRUE(results[1].stopped);
  // One logprob entry per token, the chosen token's.
  ASSERT_EQ(results[1].logprobs.size(), 3u);
  EXPECT_NEAR(results[1].logprobs[0].logprob, -0.5, kTolerance);
  EXPECT_NEAR(results[1].logprobs[1].logprob, -0.05, kTolerance);
  EXPECT_NEAR(results[1].logprobs[2].logprob, -0.02, kTolerance);
  EXPECT_THAT(results[1].logprobs[2].top, IsEmpty());  // none asked for
}

TEST(BeamSearchTest, ResultsKeepTheNBest) {
  BeamSearch search(Config(2, 1, {0}), 1);
  search.Step({{1, {{5, -0.1f}, {6, -0.5f}, {0, -0.7f}, {7, -1.0f}}}}, -1);
  search.Commit({1, 2});
  search.Step({{1, {{0, -0.2f}, {9, -0.4f}, {10, -1.0f}, {11, -1.5f}}},
               {2, {{12, -0.05f}, {0, -0.1f}, {13, -2.0f}, {14, -3.0f}}}},
              -1);
  search.Commit({1, 2});
  const BeamSearch::StepResult last =
      search.Step({{1, {{0, -0.1f}, {15, -0.3f}, {16, -0.9f}, {17, -1.0f}}},
                   {2, {{0, -0.02f}, {18, -0.2f}, {19, -0.7f}, {20, -0.8f}}}},
                  -1);
  ASSERT_TRUE(last.done);
  const std::vector<BeamHypothesis> results = search.Results();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_THAT(results[0].token_ids, ElementsAre(5, 0));
}

// W = 2, stop token 0, K = 4, length_penalty 1.
// step 1, beam 1: 5 -0.1 | 0 -0.2 | 6 -0.3 | 7 -0.4: finished [0] -0.2; running [5], [6].
// step 2, beam [5] (-0.1): 8 -0.1 | 0 -0.15 | 9 -1.0 | 10 -1.1  (totals -0.2 -0.25 -1.1 -1.2)
//         beam [6] (-0.3): 11 -0.5 | 0 -0.6 | 12 -0.7 | 13 -0.8 (totals -0.8 -0.9 -1.0 -1.1)
//   kept [5 8] -0.2, [5 0] -0.25 (hit, 2nd), [6 11] -0.8, [6 0] -0.9: finished [5 0] -0.125,
//   [0] -0.2: W hypotheses. Running [5 8] -0.2, [6 11] -0.8; -0.2 / 2 = -0.1 still beats -0.2.
//   early_stopping: done now. Without: on to
// step 3, beam [5 8] (-0.2): 0 -0.01 | 14 -0.5 | 15 -0.6 | 16 -0.75
//         beam [6 11] (-0.8): 17 -0.1 | 18 -0.2 | 0 -0.3 | 19 -0.4
//   kept [5 8 0] -0.21 (hit, 1st): -0.07, the best; [5 8 14] -0.7, [5 8 15] -0.8, [6 11 17]
//   -0.9. Finished [5 8 0], [5 0]; running [5 8 14] -0.7 / 3 cannot beat -0.125: done.
BeamSearch::StepResult EarlyStep1(BeamSearch& search) {
  return search.Step({{1, {{5, -0.1f}, {0, -0.2f}, {6, -0.3f}, {7, -0.4f}}}}, -1);
}
BeamSearch::StepResult EarlyStep2(BeamSearch& search) {
  return search.Step({{1, {{8, -0.1f}, {0, -0.15f}, {9, -1.0f}, {10, -1.1f}}},
                      {2, {{11, -0.5f}, {0, -0.6f}, {12, -0.7f}, {13, -0.8f}}}},
                     -1);
}

TEST(BeamSearchTest, EarlyStoppingEndsAsSoonAsWHypothesesAreFinished) {
  BeamSearch search(Config(2, 2, {0}, 1.0f, /*early_stopping=*/true), 1);
  const BeamSearch::StepResult first = EarlyStep1(search);
  EXPECT_FALSE(first.done);
  EXPECT_EQ(Next(first), (Pairs{{1, 5}, {1, 6}}));
  search.Commit({1, 2});
  const BeamSearch::StepResult second = EarlyStep2(search);
  EXPECT_TRUE(second.done);
  EXPECT_THAT(second.next, IsEmpty());
  const std::vector<BeamHypothesis> results = search.Results();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_THAT(results[0].token_ids, ElementsAre(5, 0));
  EXPECT_NEAR(results[0].score, -0.125, kTolerance);
  EXPECT_THAT(results[1].token_ids, ElementsAre(0));
  EXPECT_NEAR(results[1].score, -0.2, kTolerance);
}

TEST(BeamSearchTest, WithoutEarlyStoppingTheSearchGoesOnWhileARunningBeamCanImprove) {
  BeamSearch search(Config(2, 2, {0}, 1.0f, /*early_stopping=*/false), 1);
  EarlyStep1(search);
  search.Commit({1, 2});
  const BeamSearch::StepResult second = EarlyStep2(search);
  EXPECT_FALSE(second.done);
  EXPECT_EQ(Next(second), (Pairs{{1, 8}, {2, 11}}));
  search.Commit({1, 2});
  const BeamSearch::StepResult third =
      search.Step({{1, {{0, -0.01f}, {14, -0.5f}, {15, -0.6f}, {16, -0.75f}}},
                   {2, {{17, -0.1f}, {18, -0.2f}, {0, -0.3f}, {19, -0.4f}}}},
                  -1);
  EXPECT_TRUE(third.done);
  const std::vector<BeamHypothesis> results = search.Results();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_THAT(results[0].token_ids, ElementsAre(5, 8, 0));
  EXPECT_NEAR(results[0].score, -0.07, kTolerance);
  EXPECT_THAT(results[1].token_ids, ElementsAre(5, 0));
}

// W = 2, stop token 0, n = 2: the same candidates under three length penalties.
// step 1, beam 1: 0 -0.5 | 5 -0.55 | 6 -0.6 | 7 -2.0: finished [0] scoring -0.5 whatever the
//   penalty (1 ^ p = 1); running [5] -0.55, [6] -0.6.
// step 2: [5]: 8 -0.05 ...; [6]: 12 -0.1 ...: running [5 8] -0.6, [6 12] -0.7.
// step 3: [5 8]: 0 -0.3 (total -0.9, hit, 1st); [6 12]: 19 -3.0 | 0 -4.0 | 20 -4.1 | 21 -4.2.
//   [5 8 0] scores -0.9 / 3 ^ p: p = 0 -0.9, p = 1 -0.3, p = 2 -0.1.
//   Best running: [6 12 19] -3.7 / 3 ^ p: -3.7, -1.233, -0.411; against the worst finished
//   (-0.9, -0.5, -0.5): done for p = 0 and 1, not for p = 2.
struct PenaltyCase {
  float length_penalty;
  std::vector<int32_t> best;
  double best_score;
  std::vector<int32_t> second;
  bool done;
};

TEST(BeamSearchTest, LengthPenaltyScoresFinishedHypothesesAndTheStopRule) {
  const std::vector<PenaltyCase> cases = {
      {0.0f, {0}, -0.5, {5, 8, 0}, true},
      {1.0f, {5, 8, 0}, -0.3, {0}, true},
      {2.0f, {5, 8, 0}, -0.1, {0}, false},
  };
  for (const PenaltyCase& c : cases) {
    SCOPED_TRACE(::testing::Message() << "length_penalty " << c.length_penalty);
    BeamSearch search(Config(2, 2, {0}, c.length_penalty), 1);
    ASSERT_FALSE(search.Step({{1, {{0, -0.5f}, {5, -0.55f}, {6, -0.6f}, {7, -2.0f}}}}, -1).done);
    search.Commit({1, 2});
    const BeamSearch::StepResult second =
        search.Step({{1, {{8, -0.05f}, {9, -3.0f}, {10, -3.1f}, {11, -3.2f}}},
                     {2, {{12, -0.1f}, {13, -3.0f}, {14, -3.1f}, {15, -3.2f}}}},
                    -1);
    ASSERT_FALSE(second.done);
    ASSERT_EQ(Next(second), (Pairs{{1, 8}, {2, 12}}));
    search.Commit({1, 2});
    const BeamSearch::StepResult third =
        search.Step({{1, {{0, -0.3f}, {16, -5.0f}, {17, -5.1f}, {18, -5.2f}}},
                     {2, {{19, -3.0f}, {0, -4.0f}, {20, -4.1f}, {21, -4.2f}}}},
                    -1);
    EXPECT_EQ(third.done, c.done);
    if (!c.done) {
      EXPECT_EQ(Next(third), (Pairs{{2, 19}, {2, 20}}));
    }
    const std::vector<BeamHypothesis> results = search.Results();
    ASSERT_EQ(results.size(), 2u);
    EXPECT_EQ(results[0].token_ids, c.best);
    EXPECT_NEAR(results[0].score, c.best_score, kTolerance);
    EXPECT_EQ(results[1].token_ids, c.second);
  }
}

TEST(BeamSearchTest, MaxTokensEndsTheSearchWithEveryCandidateHitting) {
  // W = 2, no stop token (K = 4), max_tokens 2.
  BeamSearch search(Config(2, 2, {}, 1.0f, false, /*max_tokens=*/2), 1);
  const BeamSearch::StepResult first =
      search.Step({{1, {{5, -0.1f}, {6, -0.2f}, {7, -0.3f}, {8, -0.4f}}}}, -1);
  EXPECT_FALSE(first.done);
  search.Commit({1, 2});
  // The 2nd generated token: every candidate hits; the first W kept become the hypotheses.
  // [5]: 9 -0.5 ... (totals -0.6 -0.7 -0.8 -0.9); [6]: 13 -0.1 ... (totals -0.3 -1.1 ...).
  const BeamSearch::StepResult second =
      search.Step({{1, {{9, -0.5f}, {10, -0.6f}, {11, -0.7f}, {12, -0.8f}}},
                   {2, {{13, -0.1f}, {14, -0.9f}, {15, -1.0f}, {16, -1.1f}}}},
                  -1);
  EXPECT_TRUE(second.done);
  EXPECT_THAT(second.next, IsEmpty());
  const std::vector<BeamHypothesis> results = search.Results();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_THAT(results[0].token_ids, ElementsAre(6, 13));
  EXPECT_NEAR(results[0].score, -0.15, kTolerance);
  EXPECT_FALSE(results[0].stopped);  // ended by length
  EXPECT_THAT(results[1].token_ids, ElementsAre(5, 9));
  EXPECT_NEAR(results[1].score, -0.3, kTolerance);
}

TEST(BeamSearchTest, MaxTokensOnAStopTokenCountsAsStopped) {
  BeamSearch search(Config(1, 1, {3}, 1.0f, false, /*max_tokens=*/1), 1);  // K = 2
  const BeamSearch::StepResult result = search.Step({{1, {{3, -0.1f}, {4, -0.2f}}}}, -1);
  EXPECT_TRUE(result.done);
  const std::vector<BeamHypothesis> results = search.Results();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_THAT(results[0].token_ids, ElementsAre(3));
  EXPECT_TRUE(results[0].stopped);
}

TEST(BeamSearchTest, OnlyTheFirstKCandidatesOfARowCount) {
  // W = 1, K = 2: beam 1's third candidate is better than anything after it, but past K.
  BeamSearch search(Config(1, 1, {}), 1);
  const BeamSearch::StepResult first = search.Step({{1, {{5, -1.0f}, {6, -2.0f}, {7, -0.5f}}}}, -1);
  EXPECT_EQ(Next(first), (Pairs{{1, 5}}));
}

TEST(BeamSearchTest, TiesGoToTheEarlierBeamThenTheLowerToken) {
  // Exact binary fractions, so that the float totals tie exactly.
  BeamSearch search(Config(2, 2, {}), 1);  // K = 4
  search.Step({{1, {{5, -0.5f}, {6, -0.25f + -0.5f}, {7, -4.0f}, {8, -4.0f}}}}, -1);
  // Running: [5] -0.5 (seq 1), [6] -0.75 (seq 2).
  search.Commit({1, 2});
  // Totals: [5]+9 -0.75, [5]+3 -0.75, [6]+1 -0.75, [6]+2 -1.0 ...
  const BeamSearch::StepResult result =
      search.Step({{1, {{9, -0.25f}, {3, -0.25f}, {4, -8.0f}, {10, -8.0f}}},
                   {2, {{1, 0.0f}, {2, -0.25f}, {11, -8.0f}, {12, -8.0f}}}},
                  -1);
  EXPECT_EQ(Next(result), (Pairs{{1, 3}, {1, 9}}));
}

TEST(BeamSearchTest, ReportsTheRowsTopLogprobsWhenAsked) {
  BeamSearch search(Config(1, 1, {0}, 1.0f, false, /*max_tokens=*/2), 1);
  search.Step({{1, {{5, -0.1f}, {6, -0.2f}}}}, /*num_top_logprobs_reported=*/1);
  search.Commit({1});
  search.Step({{1, {{7, -0.3f}, {0, -0.4f}}}}, /*num_top_logprobs_reported=*/3);
  const std::vector<BeamHypothesis> results = search.Results();
  ASSERT_EQ(results.size(), 1u);
  ASSERT_EQ(results[0].logprobs.size(), 2u);
  EXPECT_FLOAT_EQ(results[0].logprobs[0].logprob, -0.1f);
  ASSERT_EQ(results[0].logprobs[0].top.size(), 1u);
  EXPECT_EQ(results[0].logprobs[0].top[0].first, 5);
  EXPECT_FLOAT_EQ(results[0].logprobs[1].logprob, -0.3f);
  ASSERT_EQ(results[0].logprobs[1].top.size(), 2u);  // as many as the row has
  EXPECT_EQ(results[0].logprobs[1].top[1].first, 0);
  EXPECT_FLOAT_EQ(results[0].logprobs[1].top[1].second, -0.4f);
}

TEST(BeamSearchTest, ResultsBeforeAnyHypothesisFinishesAreTheRunningBeams) {
  BeamSearch search(Config(2, 2, {0}), 1);
  EXPECT_THAT(search.Results(), IsEmpty());  // nothing generated yet
  search.Step({{1, {{5, -0.4f}, {6, -0.2f}, {7, -1.0f}, {8, -1.5f}}}}, -1);
  search.Commit({1, 2});
  // Aborted here: the running beams stand in, best first.
  const std::vector<BeamHypothesis> results = search.Results();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_THAT(results[0].token_ids, ElementsAre(6));
  EXPECT_NEAR(results[0].score, -0.2, kTolerance);
  EXPECT_THAT(results[1].token_ids, ElementsAre(5));
  EXPECT_FALSE(results[0].stopped);
}

using BeamSearchDeathTest = ::testing::Test;

TEST_F(BeamSearchDeathTest, MissingCandidatesForARunningBeamAbort) {
  BeamSearch search(Config(2, 1, {}), 7);
  EXPECT_DEATH(search.Step({{8, {{5, -0.1f}}}}, -1), "no candidates for beam 7");
}

TEST_F(BeamSearchDeathTest, CommitOfTheWrongNumberOfBeamsAborts) {
  BeamSearch search(Config(2, 1, {}), 1);
  search.Step({{1, {{5, -0.1f}, {6, -0.2f}, {7, -0.3f}, {8, -0.4f}}}}, -1);
  EXPECT_DEATH(search.Commit({1}), "Commit of 1 beams, 2 selected");
}

TEST_F(BeamSearchDeathTest, BadConfigAborts) {
  EXPECT_DEATH(BeamSearch(Config(2, 3, {}), 1), "beam search width 2, n 3, max_tokens 16");
}

}  // namespace
}  // namespace pagedllm::coordinator
