// The sharing half of the paper, end to end through the real coordinator and mpirun workers:
// parallel samples (n, best_of) and their seeds, beam search against transformers' references
// (tests/data/models/*/beam.json), prefix-cache hits equal to misses, and sequences preempted by
// swapping and by recomputation resuming exactly where an uninterrupted run goes.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tests/e2e/cluster.h"
#include "tests/e2e/e2e_util.h"

namespace pagedllm::testing {
namespace {

namespace v1 = pagedllm::v1;

// One choice of a response, put together from its chunks.
struct ChoiceOutcome {
  std::string text;
  std::vector<int32_t> token_ids;
  std::vector<v1::TokenLogprob> logprobs;
  v1::FinishReason finish_reason = v1::FINISH_REASON_UNSPECIFIED;
  bool has_cumulative = false;
  double cumulative_logprob = 0.0;
  int num_chunks = 0;
};
struct MultiOutcome {
  grpc::Status status;
  std::map<int, ChoiceOutcome> choices;  // by index
};

MultiOutcome GenerateChoices(v1::Generation::Stub& stub, const v1::GenerateRequest& request) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  auto reader = stub.Generate(&context, request);
  MultiOutcome outcome;
  v1::GenerateResponse response;
  while (reader->Read(&response)) {
    for (const v1::Choice& choice : response.choices()) {
      ChoiceOutcome& out = outcome.choices[choice.index()];
      EXPECT_EQ(out.finish_reason, v1::FINISH_REASON_UNSPECIFIED)
          << "choice " << choice.index() << " got a chunk after its last one";
      ++out.num_chunks;
      out.text += choice.text();
      out.token_ids.insert(out.token_ids.end(), choice.token_ids().begin(),
                           choice.token_ids().end());
      out.logprobs.insert(out.logprobs.end(), choice.logprobs().begin(), choice.logprobs().end());
      out.finish_reason = choice.finish_reason();
      if (choice.has_cumulative_logprob()) {
        out.has_cumulative = true;
        out.cumulative_logprob = choice.cumulative_logprob();
      }
    }
  }
  outcome.status = reader->Finish();
  return outcome;
}

std::vector<MultiOutcome> GenerateChoicesConcurrently(
    v1::Generation::Stub& stub, const std::vector<v1::GenerateRequest>& requests) {
  std::vector<MultiOutcome> outcomes(requests.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < requests.size(); ++i) {
    threads.emplace_back([&, i] { outcomes[i] = GenerateChoices(stub, requests[i]); });
  }
  for (std::thread& thread : threads) thread.join();
  return outcomes;
}

v1::ServerStats Stats(v1::Generation::Stub& stub) {
  grpc::ClientContext context;
  v1::ServerStats stats;
  EXPECT_TRUE(stub.GetStats(&context, v1::GetStatsRequest(), &stats).ok());
  return stats;
}

std::unique_ptr<Cluster> StartCluster(const ClusterOptions& options) {
  auto cluster = Cluster::Start(options);
  EXPECT_TRUE(cluster.ok()) << cluster.status();
  return cluster.ok() ? *std::move(cluster) : nullptr;
}

void StopCluster(std::unique_ptr<Cluster> cluster) {
  auto stats = cluster->WaitForAllBlocksFree();
  EXPECT_TRUE(stats.ok()) << stats.status();
  if (stats.ok()) {
    EXPECT_EQ(stats->num_free_swap_blocks(), stats->num_swap_blocks());
  }
  const absl::Status stopped = cluster->Stop();
  EXPECT_TRUE(stopped.ok()) << stopped << "\n" << cluster->ReadLog();
}

v1::GenerateRequest Sampled(const std::vector<int32_t>& prompt, int max_tokens, uint64_t seed,
                            int n, int best_of) {
  v1::GenerateRequest request = SampledRequest(prompt, max_tokens, /*temperature=*/1.0f, seed);
  request.mutable_sampling()->set_n(n);
  if (best_of > 0) request.mutable_sampling()->set_best_of(best_of);
  request.mutable_sampling()->set_ignore_eos(true);
  request.mutable_sampling()->set_logprobs(0);
  return request;
}

double SumOf(const std::vector<v1::TokenLogprob>& logprobs) {
  double sum = 0.0;
  for (const v1::TokenLogprob& logprob : logprobs) sum += logprob.logprob();
  return sum;
}

// n seeded samples: choice i is exactly what a lone request with seed + i gives; all stream,
// each carries its cumulative logprob; best_of returns the best n of the samples, best first.
TEST(SharingTest, ParallelSamplesFollowTheirDocumentedSeeds) {
  const std::string model = GoldenModelDir("gqa-tied");
  const std::vector<std::vector<int32_t>> prompts = GoldenPrompts(LoadJson(model + "/golden.json"));
  for (int tp : {1, 2}) {
    SCOPED_TRACE(absl::StrCat("tp ", tp));
    std::unique_ptr<Cluster> cluster = StartCluster(ClusterOptions(model, tp));
    ASSERT_NE(cluster, nullptr);
    constexpr uint64_t kSeed = 1234;
    constexpr int kTokens = 12;
    for (size_t p : {size_t{0}, size_t{2}}) {  // a one-token prompt, and a 33-token one
      SCOPED_TRACE(absl::StrCat("prompt ", p));
      std::vector<v1::GenerateRequest> alone;
      for (int i = 0; i < 4; ++i) alone.push_back(Sampled(prompts[p], kTokens, kSeed + i, 1, 0));
      const std::vector<MultiOutcome> lone = GenerateChoicesConcurrently(cluster->stub(), alone);
      const MultiOutcome parallel =
          GenerateChoices(cluster->stub(), Sampled(prompts[p], kTokens, kSeed, 4, 0));
      ASSERT_TRUE(parallel.status.ok()) << parallel.status.error_message();
      ASSERT_EQ(parallel.choices.size(), 4u);
      std::set<std::vector<int32_t>> distinct;
      for (int i = 0; i < 4; ++i) {
        ASSERT_TRUE(lone[i].status.ok()) << lone[i].status.error_message();
        const ChoiceOutcome& got = parallel.choices.at(i);
        const ChoiceOutcome& want = lone[i].choices.at(0);
        EXPECT_EQ(got.token_ids, want.token_ids) << "choice " << i;
        // Streamed: its tokens came over several responses (the frontend sends tokens that
        // arrive while a response is being written together, so not always one each).
        EXPECT_GT(got.num_chunks, 1) << "choice " << i << " did not stream";
        ASSERT_TRUE(got.has_cumulative);
        EXPECT_NEAR(got.cumulative_logprob, SumOf(got.logprobs), 1e-4);
        EXPECT_NEAR(got.cumulative_logprob, want.cumulative_logprob, 1e-4);
        distinct.insert(got.token_ids);
      }
      EXPECT_GT(distinct.size(), 1u) << "four seeds gave one sequence: seeds are not applied";
      // The same request again gives the same samples.
      const MultiOutcome again =
          GenerateChoices(cluster->stub(), Sampled(prompts[p], kTokens, kSeed, 4, 0));
      for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(again.choices.at(i).token_ids, parallel.choices.at(i).token_ids);
      }
      // best_of 4, n 2: the two samples with the highest cumulative logprob, best first, each
      // in one chunk.
      const MultiOutcome best =
          GenerateChoices(cluster->stub(), Sampled(prompts[p], kTokens, kSeed, 2, 4));
      ASSERT_TRUE(best.status.ok()) << best.status.error_message();
      ASSERT_EQ(best.choices.size(), 2u);
      std::vector<std::pair<double, int>> ranked;
      for (int i = 0; i < 4; ++i)
        ranked.emplace_back(-parallel.choices.at(i).cumulative_logprob, i);
      std::stable_sort(ranked.begin(), ranked.end());
      for (int j = 0; j < 2; ++j) {
        EXPECT_EQ(best.choices.at(j).token_ids, parallel.choices.at(ranked[j].second).token_ids)
            << "rank " << j;
        EXPECT_EQ(best.choices.at(j).num_chunks, 1);
      }
      EXPECT_GE(best.choices.at(0).cumulative_logprob, best.choices.at(1).cumulative_logprob);
    }
    StopCluster(std::move(cluster));
  }
}

// Greedy beam search equals transformers' generate(num_beams, num_return_sequences, length
// penalty, early stopping, eos) on every reference case of the golden models.
class BeamSearchTest : public ::testing::TestWithParam<std::pair<std::string, int>> {};

TEST_P(BeamSearchTest, EqualsTransformers) {
  const auto& [model, tp] = GetParam();
  const nlohmann::json beam = LoadJson(GoldenModelDir(model) + "/beam.json");
  std::unique_ptr<Cluster> cluster = StartCluster(ClusterOptions(GoldenModelDir(model), tp));
  ASSERT_NE(cluster, nullptr);
  std::vector<v1::GenerateRequest> requests;
  for (const auto& c : beam["cases"]) {
    v1::GenerateRequest request =
        GreedyRequest(c["prompt_ids"].get<std::vector<int32_t>>(), c["max_new_tokens"].get<int>());
    v1::SamplingParams* sampling = request.mutable_sampling();
    sampling->clear_temperature();
    sampling->set_use_beam_search(true);
    sampling->set_best_of(c["num_beams"].get<int>());
    sampling->set_n(c["num_return_sequences"].get<int>());
    sampling->set_length_penalty(c["length_penalty"].get<float>());
    sampling->set_early_stopping(c["early_stopping"].get<bool>());
    sampling->set_ignore_eos(true);  // the case's eos_token_ids are the only stops
    for (int32_t eos : c["eos_token_ids"].get<std::vector<int32_t>>()) {
      sampling->add_stop_token_ids(eos);
    }
    requests.push_back(request);
  }
  const std::vector<MultiOutcome> outcomes = GenerateChoicesConcurrently(cluster->stub(), requests);
  int num_eos_endings = 0;
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const auto& c = beam["cases"][i];
    SCOPED_TRACE(absl::StrCat(model, " tp ", tp, " case ", i, ": W ", c["num_beams"].get<int>(),
                              " n ", c["num_return_sequences"].get<int>(), " lp ",
                              c["length_penalty"].get<double>(), " early ",
                              c["early_stopping"].get<bool>(), " eos ", c["eos_token_ids"].dump()));
    ASSERT_TRUE(outcomes[i].status.ok()) << outcomes[i].status.error_message();
    const auto expected = c["output_ids"].get<std::vector<std::vector<int32_t>>>();
    const auto scores = c["sequences_scores"].get<std::vector<double>>();
    ASSERT_EQ(outcomes[i].choices.size(), expected.size());
    const double penalty = c["length_penalty"].get<double>();
    for (size_t j = 0; j < expected.size(); ++j) {
      const ChoiceOutcome& got = outcomes[i].choices.at(static_cast<int>(j));
      EXPECT_EQ(got.token_ids, expected[j]) << "sequence " << j;
      EXPECT_EQ(got.num_chunks, 1) << "a beam comes in one chunk";
      ASSERT_TRUE(got.has_cumulative);
      const double score =
          got.cumulative_logprob / std::pow(static_cast<double>(got.token_ids.size()), penalty);
      EXPECT_NEAR(score, scores[j], 1e-3) << "sequence " << j;
      const bool eos_end = !c["eos_token_ids"].empty() && !got.token_ids.empty() &&
                           got.token_ids.back() == c["eos_token_ids"][0].get<int32_t>();
      EXPECT_EQ(got.finish_reason, eos_end ? v1::FINISH_REASON_STOP : v1::FINISH_REASON_LENGTH);
      num_eos_endings += eos_end;
    }
  }
  EXPECT_GT(num_eos_endings, 0) << "no case ended a beam with EOS";
  StopCluster(std::move(cluster));
}

INSTANTIATE_TEST_SUITE_P(
    GoldenModels, BeamSearchTest,
    ::testing::Values(std::make_pair("mha-untied", 1), std::make_pair("gqa-tied", 1),
                      std::make_pair("mqa-llama3-rope", 2), std::make_pair("gqa-wide-head", 1),
                      std::make_pair("odd-vocab-tied", 4)),
    [](const ::testing::TestParamInfo<std::pair<std::string, int>>& info) {
      std::string name = absl::StrCat(info.param.first, "_tp", info.param.second);
      for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
      return name;
    });

// A prefix-cache hit computes only the rest of the prompt and gives exactly the tokens of a miss
// and its logprobs to float32 rounding: the hit's prefill multiplies a few rows against the
// cached KV where the miss multiplies all of them, and OpenBLAS sums such products in another
// order (differences of ~2e-6 were seen; a wrong cached block moves them by far more).
TEST(SharingTest, PrefixCacheHitEqualsAMiss) {
  constexpr double kRounding = 2e-5;
  const std::string model = GoldenModelDir("mha-untied");
  const std::vector<std::vector<int32_t>> prompts = GoldenPrompts(LoadJson(model + "/golden.json"));
  const std::vector<int32_t>& prompt = prompts[3];  // 150 tokens
  std::vector<int32_t> longer = prompt;             // the same prefix and a different tail
  longer.insert(longer.end(), {7, 8, 9, 10, 11});
  for (int tp : {1, 2}) {
    SCOPED_TRACE(absl::StrCat("tp ", tp));
    ClusterOptions options(model, tp);
    options.extra_flags = {"--enable_prefix_caching=false"};
    std::unique_ptr<Cluster> cold = StartCluster(options);
    ASSERT_NE(cold, nullptr);
    const GenerateOutcome miss = Generate(cold->stub(), GreedyRequest(prompt, 8, 5));
    const GenerateOutcome miss_longer = Generate(cold->stub(), GreedyRequest(longer, 8, 5));
    EXPECT_EQ(Stats(cold->stub()).num_prefix_cache_hit_tokens(), 0u);
    StopCluster(std::move(cold));

    std::unique_ptr<Cluster> cluster = StartCluster(ClusterOptions(model, tp));
    ASSERT_NE(cluster, nullptr);
    const GenerateOutcome first = Generate(cluster->stub(), GreedyRequest(prompt, 8, 5));
    const uint64_t hits_before = Stats(cluster->stub()).num_prefix_cache_hit_tokens();
    const GenerateOutcome second = Generate(cluster->stub(), GreedyRequest(prompt, 8, 5));
    const GenerateOutcome third = Generate(cluster->stub(), GreedyRequest(longer, 8, 5));
    const v1::ServerStats stats = Stats(cluster->stub());
    EXPECT_TRUE(stats.prefix_caching());
    // 150 tokens: 9 full blocks of 16 are found again, twice.
    EXPECT_EQ(stats.num_prefix_cache_hit_tokens() - hits_before, 2u * 9 * 16);
    for (const GenerateOutcome* outcome : {&first, &second, &third}) {
      ASSERT_TRUE(outcome->status.ok()) << outcome->status.error_message();
    }
    for (const auto& [got, want] : {std::make_pair(&first, &miss), std::make_pair(&second, &miss),
                                    std::make_pair(&third, &miss_longer)}) {
      EXPECT_EQ(got->token_ids, want->token_ids);
      ASSERT_EQ(got->logprobs.size(), want->logprobs.size());
      for (size_t t = 0; t < want->logprobs.size(); ++t) {
        EXPECT_NEAR(got->logprobs[t].logprob(), want->logprobs[t].logprob(), kRounding)
            << "token " << t;
        ASSERT_EQ(got->logprobs[t].top_size(), want->logprobs[t].top_size());
        for (int k = 0; k < want->logprobs[t].top_size(); ++k) {
          EXPECT_EQ(got->logprobs[t].top(k).token_id(), want->logprobs[t].top(k).token_id());
          EXPECT_NEAR(got->logprobs[t].top(k).logprob(), want->logprobs[t].top(k).logprob(),
                      kRounding);
        }
      }
    }
    StopCluster(std::move(cluster));
  }
}

// A pool too small for the load preempts: groups of several samples and beams are swapped to the
// host pool, single sequences recomputed (and recomputed when the host pool is full too); every
// request still gets exactly the tokens of an uninterrupted run.
TEST(SharingTest, PreemptedBySwapAndRecomputeResumeExactly) {
  const std::string model = GoldenModelDir("gqa-wide-head");
  const std::vector<std::vector<int32_t>> prompts = GoldenPrompts(LoadJson(model + "/golden.json"));
  std::vector<v1::GenerateRequest> requests;
  for (int r = 0; r < 8; ++r) {
    const std::vector<int32_t>& prompt = prompts[1 + r % 3];  // 7, 33 and 150 tokens
    if (r % 4 == 0) {
      requests.push_back(Sampled(prompt, 40, 100 + r, 3, 0));  // a group of 3 samples
    } else if (r % 4 == 1) {
      v1::GenerateRequest request = GreedyRequest(prompt, 30);
      request.mutable_sampling()->clear_temperature();
      request.mutable_sampling()->set_use_beam_search(true);
      request.mutable_sampling()->set_best_of(3);
      request.mutable_sampling()->set_n(2);
      request.mutable_sampling()->set_ignore_eos(true);
      requests.push_back(request);
    } else {
      requests.push_back(Sampled(prompt, 40, 100 + r, 1, 0));
    }
  }
  for (int tp : {1, 2}) {
    SCOPED_TRACE(absl::StrCat("tp ", tp));
    std::unique_ptr<Cluster> roomy = StartCluster(ClusterOptions(model, tp));
    ASSERT_NE(roomy, nullptr);
    const std::vector<MultiOutcome> want = GenerateChoicesConcurrently(roomy->stub(), requests);
    EXPECT_EQ(Stats(roomy->stub()).num_preemptions(), 0u);
    StopCluster(std::move(roomy));

    for (const char* mode : {"auto", "swap", "recompute"}) {
      SCOPED_TRACE(mode);
      ClusterOptions options(model, tp);
      options.num_kv_blocks = 40;  // 640 tokens for ~1500 wanted at once
      options.extra_flags = {absl::StrCat("--preemption_mode=", mode), "--swap_space_gib=0.002",
                             "--enable_prefix_caching=false"};
      std::unique_ptr<Cluster> tight = StartCluster(options);
      ASSERT_NE(tight, nullptr);
      const std::vector<MultiOutcome> got = GenerateChoicesConcurrently(tight->stub(), requests);
      for (size_t r = 0; r < requests.size(); ++r) {
        ASSERT_TRUE(got[r].status.ok())
            << "request " << r << ": " << got[r].status.error_message() << "\n"
            << tight->ReadLog();
        ASSERT_EQ(got[r].choices.size(), want[r].choices.size());
        for (const auto& [index, choice] : want[r].choices) {
          EXPECT_EQ(got[r].choices.at(index).token_ids, choice.token_ids)
              << "request " << r << " choice " << index;
        }
      }
      const v1::ServerStats stats = Stats(tight->stub());
      EXPECT_GT(stats.num_preemptions(), 0u);
      // auto swaps only a group of several sequences that happens to be the newest running one
      // when blocks run out (arrival timing decides), swap swaps every preempted group.
      if (std::string(mode) == "recompute") {
        EXPECT_EQ(stats.num_swapped_out(), 0u);
      } else if (std::string(mode) == "swap") {
        EXPECT_GT(stats.num_swapped_out(), 0u) << "swap space: " << stats.num_swap_blocks();
      }
      EXPECT_EQ(stats.num_swapped_in(), stats.num_swapped_out());
      StopCluster(std::move(tight));
    }
  }
}

// A stop string ends each choice on its own (the others keep going), exactly where a lone request
// with that choice's seed stops; cancelling a call of several samples or beams frees every block.
TEST(SharingTest, StopStringsEndChoicesApartAndCancellingFreesEveryBlock) {
  std::unique_ptr<Cluster> cluster =
      StartCluster(ClusterOptions(SourceDir() + "/models/pagedllm-tiny-py", 1));
  ASSERT_NE(cluster, nullptr);
  constexpr uint64_t kSeed = 99;
  auto text_request = [](uint64_t seed, int n) {
    v1::GenerateRequest request;
    request.set_text("def fibonacci(n):");
    v1::SamplingParams* sampling = request.mutable_sampling();
    sampling->set_max_tokens(48);
    sampling->set_temperature(1.0f);
    sampling->set_seed(seed);
    sampling->set_n(n);
    sampling->add_stop("return");
    return request;
  };
  const MultiOutcome together = GenerateChoices(cluster->stub(), text_request(kSeed, 4));
  ASSERT_TRUE(together.status.ok()) << together.status.error_message();
  ASSERT_EQ(together.choices.size(), 4u);
  int stopped = 0;
  for (int i = 0; i < 4; ++i) {
    const MultiOutcome alone = GenerateChoices(cluster->stub(), text_request(kSeed + i, 1));
    ASSERT_TRUE(alone.status.ok()) << alone.status.error_message();
    const ChoiceOutcome& got = together.choices.at(i);
    EXPECT_EQ(got.text, alone.choices.at(0).text) << "choice " << i;
    EXPECT_EQ(got.token_ids, alone.choices.at(0).token_ids) << "choice " << i;
    EXPECT_EQ(got.finish_reason, alone.choices.at(0).finish_reason) << "choice " << i;
    EXPECT_EQ(got.text.find("return"), std::string::npos) << "choice " << i << ": " << got.text;
    stopped += got.finish_reason == v1::FINISH_REASON_STOP;
  }
  EXPECT_GT(stopped, 0) << "no choice met the stop string: the test proves nothing";

  auto before = cluster->WaitForAllBlocksFree(5000);
  ASSERT_TRUE(before.ok()) << before.status();
  for (bool beam : {false, true}) {
    SCOPED_TRACE(beam ? "beam search" : "samples");
    v1::GenerateRequest request = GreedyRequest({0, 476, 290}, 800);
    request.mutable_sampling()->set_ignore_eos(true);
    if (beam) {
      request.mutable_sampling()->clear_temperature();
      request.mutable_sampling()->set_use_beam_search(true);
      request.mutable_sampling()->set_best_of(4);
    } else {
      request.mutable_sampling()->set_temperature(1.0f);
      request.mutable_sampling()->set_n(4);
    }
    grpc::ClientContext context;
    auto reader = cluster->stub().Generate(&context, request);
    if (!beam) {
      v1::GenerateResponse response;
      ASSERT_TRUE(reader->Read(&response));  // it is running
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));  // beams send nothing early
    }
    context.TryCancel();
    v1::GenerateResponse response;
    while (reader->Read(&response)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
    auto after = cluster->WaitForAllBlocksFree(5000);
    ASSERT_TRUE(after.ok()) << after.status();
    EXPECT_EQ(after->num_running(), 0);
    EXPECT_LT(after->num_generated_tokens() - before->num_generated_tokens(), 4u * 400);
    before = after;
  }
  StopCluster(std::move(cluster));
}

}  // namespace
}  // namespace pagedllm::testing
