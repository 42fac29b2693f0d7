// pagedllm-bench's workloads (seeded draws, the JSON-lines file, Poisson arrivals) and statistics
// (percentiles, the run report, the floor).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "tools/bench/stats.h"
#include "tools/bench/sweep.h"
#include "tools/bench/workload.h"

namespace pagedllm::bench {
namespace {

WorkloadOptions Options(const std::string& kind) {
  WorkloadOptions options;
  options.kind = kind;
  options.num_requests = 500;
  options.prompt_len = 12;
  options.output_len = 7;
  options.max_len = 300;
  options.vocab_low = 3;
  options.vocab_high = 100;
  options.seed = 42;
  return options;
}

std::string TempPath(const std::string& name) {
  return testing::TempDir() + "/" + name + "-" + std::to_string(::getpid()) + ".jsonl";
}

TEST(BenchWorkloadTest, FixedLengthsAndSharedPrefix) {
  WorkloadOptions options = Options("fixed");
  options.shared_prefix_len = 5;
  const auto requests = MakeWorkload(options);
  ASSERT_TRUE(requests.ok()) << requests.status();
  ASSERT_EQ(requests->size(), 500u);
  for (const BenchRequest& request : *requests) {
    ASSERT_EQ(request.prompt_ids.size(), 17u);
    EXPECT_EQ(request.output_len, 7);
    for (int32_t id : request.prompt_ids) {
      EXPECT_GE(id, 3);
      EXPECT_LT(id, 100);
    }
    EXPECT_TRUE(std::equal(request.prompt_ids.begin(), request.prompt_ids.begin() + 5,
                           (*requests)[0].prompt_ids.begin()));
  }
}

TEST(BenchWorkloadTest, SameSeedSameRequests) {
  for (const char* kind : {"fixed", "sharegpt", "alpaca"}) {
    const auto a = MakeWorkload(Options(kind));
    const auto b = MakeWorkload(Options(kind));
    WorkloadOptions other = Options(kind);
    other.seed = 43;
    const auto c = MakeWorkload(other);
    ASSERT_TRUE(a.ok() && b.ok() && c.ok());
    bool same = true, differs = false;
    for (size_t i = 0; i < a->size(); ++i) {
      same = same && (*a)[i].prompt_ids == (*b)[i].prompt_ids &&
             (*a)[i].output_len == (*b)[i].output_len;
      differs = differs || (*a)[i].prompt_ids != (*c)[i].prompt_ids;
    }
    EXPECT_TRUE(same) << kind;
    EXPECT_TRUE(differs) << kind;
  }
}

TEST(BenchWorkloadTest, ShareGptLengthsAreCappedByMaxLen) {
  const auto requests = MakeWorkload(Options("sharegpt"));
  ASSERT_TRUE(requests.ok());
  bool some_capped = false;
  for (const BenchRequest& request : *requests) {
    const int prompt = static_cast<int>(request.prompt_ids.size());
    EXPECT_GE(prompt, kMinDrawnLen);
    EXPECT_GE(request.output_len, kMinDrawnLen);
    EXPECT_LE(prompt + request.output_len, 300);
    some_capped = some_capped || prompt + request.output_len == 300;
  }
  EXPECT_TRUE(some_capped);  // means 161 + 338 against 300: many reach the cap
}

TEST(BenchWorkloadTest, BadOptionsNameTheFlag) {
  WorkloadOptions options = Options("sharegpt");
  options.max_len = 5;
  EXPECT_NE(MakeWorkload(options).status().message().find("--max_len"), std::string::npos);
  options = Options("fixed");
  options.vocab_high = 3;
  EXPECT_NE(MakeWorkload(options).status().message().find("--vocab_high"), std::string::npos);
  options = Options("lmsys");
  EXPECT_NE(MakeWorkload(options).status().message().find("--workload"), std::string::npos);
}

TEST(BenchWorkloadTest, FileRoundTrip) {
  const auto requests = MakeWorkload(Options("alpaca"));
  ASSERT_TRUE(requests.ok());
  const std::string path = TempPath("workload");
  ASSERT_TRUE(WriteWorkloadFile(path, *requests).ok());
  const auto read = ReadWorkloadFile(path, 100);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), requests->size());
  for (size_t i = 0; i < read->size(); ++i) {
    EXPECT_EQ((*read)[i].prompt_ids, (*requests)[i].prompt_ids);
    EXPECT_EQ((*read)[i].output_len, (*requests)[i].output_len);
  }
  std::ifstream in(path);
  std::string first;
  std::getline(in, first);
  EXPECT_EQ(first.rfind("{\"prompt_ids\":[", 0), 0u) << first;
  std::remove(path.c_str());
}

TEST(BenchWorkloadTest, FileErrorsNameTheLine) {
  const std::string path = TempPath("bad");
  {
    std::ofstream out(path);
    out << "{\"prompt_ids\": [1, 2], \"output_len\": 3}\n\n"
        << "{\"prompt_ids\": [1, 200], \"output_len\": 3}\n";
  }
  const auto read = ReadWorkloadFile(path, 100);
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find(":3: prompt_ids[1] = 200"), std::string::npos)
      << read.status();
  {
    std::ofstream out(path);
    out << "{\"prompt_ids\": [1, 2], \"output_len\": 0}\n";
  }
  EXPECT_NE(ReadWorkloadFile(path, 100).status().message().find(":1: output_len"),
            std::string::npos);
  {
    std::ofstream out(path);
    out << "{\"prompt_ids\": [1, 2], \n";
  }
  EXPECT_NE(ReadWorkloadFile(path, 100).status().message().find("not a JSON object"),
            std::string::npos);
  std::remove(path.c_str());
  EXPECT_EQ(ReadWorkloadFile(path, 100).status().code(), absl::StatusCode::kNotFound);
}

TEST(BenchWorkloadTest, PoissonArrivals) {
  const std::vector<double> one = PoissonArrivals(20000, 1.0, 7);
  const std::vector<double> four = PoissonArrivals(20000, 4.0, 7);
  ASSERT_EQ(one.size(), 20000u);
  EXPECT_EQ(one[0], 0.0);
  for (size_t i = 1; i < one.size(); ++i) {
    ASSERT_GE(one[i], one[i - 1]);
    ASSERT_NEAR(four[i], one[i] / 4, 1e-9 * one[i]);  // the same gaps, scaled
  }
  EXPECT_NEAR(one.back() / (one.size() - 1), 1.0, 0.03);  // mean gap 1 / rate
  for (double t : PoissonArrivals(5, INFINITY, 7)) EXPECT_EQ(t, 0.0);
  EXPECT_NE(PoissonArrivals(3, 1.0, 8)[2], one[2]);
}

TEST(BenchStatsTest, PercentilesInterpolate) {
  const std::vector<double> sorted = {1, 2, 3, 4, 5};
  EXPECT_DOUBLE_EQ(Percentile(sorted, 0.5), 3);
  EXPECT_DOUBLE_EQ(Percentile(sorted, 0.9), 4.6);
  EXPECT_DOUBLE_EQ(Percentile(sorted, 0.99), 4.96);
  EXPECT_DOUBLE_EQ(Percentile(sorted, 1.0), 5);
  EXPECT_DOUBLE_EQ(Percentile({}, 0.5), 0);
  const Summary summary = Summarize({5, 1, 4, 2, 3});
  EXPECT_EQ(summary.count, 5u);
  EXPECT_DOUBLE_EQ(summary.mean, 3);
  EXPECT_DOUBLE_EQ(summary.p50, 3);
}

TEST(BenchStatsTest, AnalyzeCountsCompletedRequestsOnly) {
  std::vector<RequestRecord> records(3);
  records[0] = {10, 5, 0, 0, 0.1, 0.5, 5, 5, {0.1, 0.1, 0.1, 0.1}, true, ""};
  records[1] = {20, 3, 0, 0, 0.2, 0.4, 3, 3, {0.1, 0.1}, true, ""};
  records[2] = {30, 3, 0, 0, -1, 0.01, 0, 0, {}, false, "code 14: unavailable"};
  const RunReport report = Analyze(records, 2.0);
  EXPECT_EQ(report.completed, 2);
  EXPECT_EQ(report.failed, 1);
  EXPECT_EQ(report.first_error, "code 14: unavailable");
  EXPECT_EQ(report.input_tokens, 30);
  EXPECT_EQ(report.output_tokens, 8);
  EXPECT_DOUBLE_EQ(report.request_throughput, 1.0);
  EXPECT_DOUBLE_EQ(report.output_tokens_per_s, 4.0);
  EXPECT_DOUBLE_EQ(report.total_tokens_per_s, 19.0);
  EXPECT_EQ(report.ttft_ms.count, 2u);
  EXPECT_NEAR(report.ttft_ms.mean, 150, 1e-9);
  EXPECT_NEAR(report.tpot_ms.p50, 100, 1e-9);  // (0.5 - 0.1) / 4 and (0.4 - 0.2) / 2
  EXPECT_EQ(report.itl_ms.count, 6u);
  EXPECT_NEAR(report.e2e_ms.p99, 499, 1e-6);
}

TEST(BenchStatsTest, CompletionRateFollowsTheQueue) {
  // Ten arrivals one second apart; each sent on arrival.
  std::vector<RequestRecord> keeps_up(10), falls_behind(10);
  for (int i = 0; i < 10; ++i) {
    for (RequestRecord* record : {&keeps_up[i], &falls_behind[i]}) {
      record->arrival_s = record->sent_s = i;
      record->first_token_s = 0.1;
      record->ok = true;
    }
    keeps_up[i].latency_s = 0.5 + 0.3 * (i % 2);  // bounded latency
    falls_behind[i].latency_s = 0.5 + i;          // one second more queueing every second
  }
  const RunReport good = Analyze(keeps_up, 10.0);
  EXPECT_NEAR(good.arrival_rate, 1.0, 1e-12);
  EXPECT_NEAR(good.completion_rate, 1.0, 0.02);
  const RunReport bad = Analyze(falls_behind, 19.5);
  EXPECT_NEAR(bad.arrival_rate, 1.0, 1e-12);
  EXPECT_NEAR(bad.completion_rate, 0.5, 1e-9);
  for (RequestRecord& record : keeps_up) record.arrival_s = 0;  // all at once: no fit
  EXPECT_EQ(Analyze(keeps_up, 1.0).arrival_rate, 0.0);
}

TEST(BenchSweepTest, ExplosionReasons) {
  RunReport report;
  report.num_requests = 100;
  report.request_throughput = 9.5;
  report.arrival_rate = 10;
  report.completion_rate = 10;
  report.ttft_ms.p99 = 900;
  report.e2e_ms.p50 = 100;
  EXPECT_EQ(Explosion(report, 10, 1000), "");
  report.ttft_ms.p99 = 1200;
  EXPECT_NE(Explosion(report, 10, 1000).find("p99 TTFT 1200.0 ms > 1000 ms"), std::string::npos);
  report.ttft_ms.p99 = 900;
  // Offered as realized: 8.0/s arrived, 7.5 achieved is within 90% although the rate was 10.
  report.arrival_rate = 8;
  report.request_throughput = 7.5;
  EXPECT_EQ(Explosion(report, 10, 1000), "");
  report.request_throughput = 5;
  report.completion_rate = 5;
  EXPECT_EQ(Explosion(report, 10, 1000).rfind("achieved 5.00 requests/s < 90% of the 8.00/s", 0),
            0u);
  // A short run whose completions kept pace: said so.
  report.completion_rate = 8;
  report.e2e_ms.p50 = 5000;
  EXPECT_NE(Explosion(report, 10, 1000).find("a short run"), std::string::npos);
  report.failed = 2;
  EXPECT_EQ(Explosion(report, 10, 1000), "2 requests failed");
}

TEST(BenchStatsTest, FloorByHand) {
  FloorInputs inputs;
  inputs.requests = {{10, 4}, {2, 2}};
  inputs.weight_bytes_per_worker = 1000;
  inputs.kv_bytes_per_token_per_worker = 10;
  inputs.memory_gbps = 1e-6;  // 1000 bytes/s
  inputs.peak_tflops = 1e-9;  // 1000 FLOP/s
  inputs.bytes_per_param = 2;
  Floor floor = ComputeFloor(inputs);
  // KV tokens: 10 + 11 + 12 + 13 = 46, and 2 + 3 = 5.
  EXPECT_DOUBLE_EQ(floor.kv_bytes, 510);
  EXPECT_EQ(floor.steps, 4);
  EXPECT_DOUBLE_EQ(floor.weight_bytes, 4000);
  EXPECT_DOUBLE_EQ(floor.memory_s, 4.51);
  EXPECT_DOUBLE_EQ(floor.params_per_worker, 500);
  EXPECT_EQ(floor.gemm_tokens, 18);
  EXPECT_DOUBLE_EQ(floor.gemm_flops, 18000);
  EXPECT_DOUBLE_EQ(floor.compute_s, 18);
  EXPECT_TRUE(floor.compute_bound);
  EXPECT_DOUBLE_EQ(floor.time_s, 18);

  // One request in flight: the steps are every output token; two samples each read their KV.
  inputs.concurrency = 1;
  inputs.sequences_per_request = 2;
  inputs.skipped_prompt_tokens = 2;
  floor = ComputeFloor(inputs);
  EXPECT_EQ(floor.steps, 6);
  EXPECT_DOUBLE_EQ(floor.kv_bytes, 1020);
  EXPECT_EQ(floor.gemm_tokens, 10 + 12);
}

}  // namespace
}  // namespace pagedllm::bench
