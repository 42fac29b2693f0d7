// CpuOps::SampleRows against an independent float64 reference (kept-set sizes, token inside the
// kept set, logprobs, top-N), the shared arithmetic (Philox known answers, exp/log accuracy),
// shard layouts, degenerate rows, and a chi-square test that the draws follow the renormalised
// kept distribution.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/device.h"
#include "kernels/sampling_math.h"
#include "tests/kernels/kernel_test_util.h"
#include "tests/kernels/sample_rows_test_util.h"

namespace pagedllm::kernels {
namespace {

namespace sm = sampling;
using sample_test::kNan;
using sample_test::kNegInf;
using sample_test::RandomBatch;
using sample_test::RandomRow;
using sample_test::RunSampleRows;
using sample_test::SampleOutputs;

Device& Cpu() { return test_util::TestDevice(); }

TEST(SamplingMathTest, PhiloxKnownAnswers) {  // Random123's kat_vectors
  sm::Philox4 a = sm::Philox4x32(0, 0, 0, 0, 0, 0);
  EXPECT_EQ(a.v[0], 0x6627e8d5u);
  EXPECT_EQ(a.v[1], 0xe169c58du);
  EXPECT_EQ(a.v[2], 0xbc57ac4cu);
  EXPECT_EQ(a.v[3], 0x9b00dbd8u);
  sm::Philox4 b = sm::Philox4x32(~0u, ~0u, ~0u, ~0u, ~0u, ~0u);
  EXPECT_EQ(b.v[0], 0x408f276du);
  EXPECT_EQ(b.v[3], 0x6d5451fdu);
  sm::Philox4 c =
      sm::Philox4x32(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
  EXPECT_EQ(c.v[0], 0xd16cfe09u);
  EXPECT_EQ(c.v[1], 0x94fdccebu);
  EXPECT_EQ(c.v[2], 0x5001e420u);
  EXPECT_EQ(c.v[3], 0x24126ea1u);
}

TEST(SamplingMathTest, ExpAndLogAreAccurate) {
  double worst_exp = 0.0, worst_log = 0.0;
  for (int i = 0; i <= 200000; ++i) {
    const float x = -87.0f * static_cast<float>(i) / 200000.0f;
    const double want = std::exp(static_cast<double>(x));
    worst_exp = std::max(worst_exp, std::abs(sm::ExpNonPositive(x) - want) / want);
    const float y = std::ldexp(1.0f + static_cast<float>(i) / 200000.0f, (i % 60) - 30);
    const double want_log = std::log(static_cast<double>(y));
    worst_log = std::max(
        worst_log, std::abs(sm::LogPositive(y) - want_log) / std::max(std::abs(want_log), 1e-30));
  }
  EXPECT_LT(worst_exp, 4e-7);
  EXPECT_LT(worst_log, 4e-7);
  EXPECT_EQ(sm::ExpNonPositive(kNegInf), 0.0f);
  EXPECT_EQ(sm::ExpNonPositive(kNan), 0.0f);
  EXPECT_EQ(sm::ExpNonPositive(-90.0f), 0.0f);
  EXPECT_EQ(sm::ExpNonPositive(0.0f), 1.0f);
  EXPECT_EQ(sm::LogPositive(1.0f), 0.0f);
}

TEST(SamplingMathTest, OrderKeyFollowsTheLogitOrder) {
  const float values[] = {kNegInf, -1e30f, -2.0f, -1e-30f, -0.0f,
                          0.0f,    1e-30f, 3.0f,  1e30f,   std::numeric_limits<float>::infinity()};
  for (size_t i = 0; i + 1 < std::size(values); ++i) {
    if (values[i] == values[i + 1]) {
      EXPECT_EQ(sm::OrderKey(values[i]), sm::OrderKey(values[i + 1]));
    } else {
      EXPECT_LT(sm::OrderKey(values[i]), sm::OrderKey(values[i + 1])) << values[i];
    }
  }
}

// The float64 reference of one row: the kept set, the raw log-softmax and the top-N.
struct Reference {
  std::vector<int32_t> order;  // non-NaN ids, logit descending then id ascending
  std::vector<int32_t> kept;   // a prefix-closed subset of order
  std::vector<double> logprobs;
  bool ambiguous = false;  // a boundary within float rounding of flipping
};

Reference ReferenceRow(const std::vector<float>& l, const SampleRowParams& p) {
  Reference ref;
  const int32_t vocab = static_cast<int32_t>(l.size());
  for (int32_t i = 0; i < vocab; ++i) {
    if (!std::isnan(l[i])) ref.order.push_back(i);
  }
  std::stable_sort(ref.order.begin(), ref.order.end(),
                   [&](int32_t a, int32_t b) { return l[a] > l[b]; });
  double max_logit = -std::numeric_limits<double>::infinity();
  for (int32_t id : ref.order) max_logit = std::max(max_logit, static_cast<double>(l[id]));
  ref.logprobs.assign(vocab, -std::numeric_limits<double>::infinity());
  const bool degenerate = !std::isfinite(max_logit);
  if (!degenerate) {
    double sum = 0.0;
    for (int32_t id : ref.order) sum += std::exp(l[id] - max_logit);
    for (int32_t id : ref.order) ref.logprobs[id] = l[id] - max_logit - std::log(sum);
  } else {
    for (int32_t id : ref.order) ref.logprobs[id] = l[id] == max_logit ? 0.0 : ref.logprobs[id];
  }
  if (p.temperature == 0.0f || degenerate) {
    // The first maximum; 0 when nothing is above -inf.
    const bool any = !ref.order.empty() && l[ref.order[0]] > kNegInf;
    ref.kept = {any ? ref.order[0] : 0};
    return ref;
  }
  std::vector<double> w(vocab, 0.0);  // exp(s); s < ln(FLT_MIN) underflows, as in float
  for (int32_t id : ref.order) {
    const double s = (l[id] - max_logit) / p.temperature;
    w[id] = s < -87.33654 ? 0.0 : std::exp(s);
    if (std::abs(s + 87.33654) < 0.01) ref.ambiguous = true;
  }
  size_t n = ref.order.size();
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < n) n = p.top_k;
  if (p.top_p < 1.0f) {
    double total = 0.0;
    for (size_t j = 0; j < n; ++j) total += w[ref.order[j]];
    const double threshold = (p.top_p - 1e-6) * total;
    double mass = 0.0;
    for (size_t j = 0; j < n; ++j) {
      mass += w[ref.order[j]];
      // The op's weights are within 3e-7 (float exp) and 2^-40 (fixed point) of these.
      if (std::abs(mass - threshold) <= 5e-7 * total + 1e-11 * static_cast<double>(j + 1)) {
        ref.ambiguous = true;
      }
      if (mass >= threshold) {
        n = j + 1;
        break;
      }
    }
  }
  for (size_t j = 0; j < n; ++j) {
    const double weight = w[ref.order[j]];
    if (p.min_p > 0.0f && weight != 1.0 && std::abs(weight - p.min_p) <= 5e-7 * p.min_p) {
      ref.ambiguous = true;
    }
    if (weight > 0.0 && weight >= p.min_p) ref.kept.push_back(ref.order[j]);
  }
  return ref;
}

// |got - want| within 2e-5 relative (absolute below 1), or both the same infinity.
::testing::AssertionResult LogprobNear(float got, double want) {
  if (static_cast<double>(got) == want ||
      std::abs(got - want) <= 2e-5 * std::max(1.0, std::abs(want))) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "logprob " << got << ", want " << want;
}

// Checks `out` row p against the reference; returns false for an ambiguous row it skipped.
bool CheckRow(const std::vector<float>& l, const SampleRowParams& p, const SampleOutputs& out,
              int64_t row, int num_top, const std::string& what) {
  const Reference ref = ReferenceRow(l, p);
  const int32_t token = out.tokens[row];
  EXPECT_TRUE(LogprobNear(out.logprobs[row], ref.logprobs[token])) << what;
  for (int j = 0; j < num_top; ++j) {
    const int32_t id = out.top_ids[row * num_top + j];
    const bool has = j < std::min<int>(p.num_top_logprobs, static_cast<int>(ref.order.size()));
    EXPECT_EQ(id, has ? ref.order[j] : -1) << what << " top " << j;
    if (has) {
      EXPECT_TRUE(LogprobNear(out.top_logprobs[row * num_top + j], ref.logprobs[id])) << what;
    } else {
      EXPECT_EQ(out.top_logprobs[row * num_top + j], kNegInf) << what;
    }
  }
  if (ref.ambiguous) return false;
  EXPECT_EQ(out.num_kept[row], static_cast<int32_t>(ref.kept.size())) << what;
  EXPECT_NE(std::find(ref.kept.begin(), ref.kept.end(), token), ref.kept.end())
      << what << ": token " << token << " is not kept";
  return true;
}

std::string Describe(int64_t vocab, int64_t row, const SampleRowParams& p) {
  return "vocab " + std::to_string(vocab) + " row " + std::to_string(row) + " T " +
         std::to_string(p.temperature) + " k " + std::to_string(p.top_k) + " p " +
         std::to_string(p.top_p) + " min_p " + std::to_string(p.min_p);
}

TEST(CpuSampleRowsTest, MatchesFloat64ReferenceOverRandomRows) {
  std::mt19937_64 rng(2024);
  int checked = 0, ambiguous = 0;
  for (int64_t vocab : {1, 2, 7, 37, 500, 3001}) {
    const int64_t rows = vocab > 1000 ? 150 : 400;
    const int num_top = static_cast<int>(std::min<int64_t>(vocab, kMaxSampleTopLogprobs));
    std::vector<float> logits;
    std::vector<SampleRowParams> params;
    RandomBatch(vocab, rows, num_top, rng, &logits, &params);
    const SampleOutputs out =
        RunSampleRows(Cpu(), DType::kFloat32, logits, rows, vocab, params, num_top);
    for (int64_t p = 0; p < rows; ++p) {
      const std::vector<float> row(logits.begin() + p * vocab, logits.begin() + (p + 1) * vocab);
      if (CheckRow(row, params[p], out, p, num_top, Describe(vocab, p, params[p]))) {
        ++checked;
      } else {
        ++ambiguous;
      }
    }
  }
  EXPECT_LE(ambiguous, checked / 100) << checked << " rows checked";
}

TEST(CpuSampleRowsTest, ShardLayoutsGiveTheSameResults) {
  std::mt19937_64 rng(7);
  const int64_t vocab = 1001, rows = 40;
  const int num_top = 5;
  std::vector<float> logits;
  std::vector<SampleRowParams> params;
  RandomBatch(vocab, rows, num_top, rng, &logits, &params);
  const SampleOutputs one =
      RunSampleRows(Cpu(), DType::kFloat32, logits, rows, vocab, params, num_top, /*num_shards=*/1);
  for (int shards : {2, 3, 8}) {
    const SampleOutputs many =
        RunSampleRows(Cpu(), DType::kFloat32, logits, rows, vocab, params, num_top, shards);
    EXPECT_EQ(many.tokens, one.tokens) << shards;
    EXPECT_EQ(many.num_kept, one.num_kept) << shards;
    EXPECT_EQ(many.top_ids, one.top_ids) << shards;
    for (int64_t p = 0; p < rows; ++p) EXPECT_EQ(many.logprobs[p], one.logprobs[p]);
  }
}

TEST(CpuSampleRowsTest, DegenerateRowsTakeTheArgmax) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<std::vector<float>> rows = {
      {kNegInf, kNegInf, kNegInf}, {kNan, kNan, kNan}, {kNan, kNegInf, kNegInf},
      {1.0f, inf, 2.0f},           {inf, 1.0f, inf},   {kNan, 3.0f, kNan}};
  const std::vector<int32_t> want = {0, 0, 0, 1, 0, 1};
  std::vector<float> logits;
  for (const auto& row : rows) logits.insert(logits.end(), row.begin(), row.end());
  SampleRowParams params;
  params.temperature = 0.7f;
  params.top_p = 0.5f;
  params.num_top_logprobs = 2;
  const SampleOutputs out = RunSampleRows(Cpu(), DType::kFloat32, logits, 6, 3,
                                          std::vector<SampleRowParams>(6, params), 2);
  EXPECT_EQ(out.tokens, want);
  EXPECT_EQ(out.logprobs[3], 0.0f);
  EXPECT_EQ(out.logprobs[5], 0.0f);  // the only non-NaN logit
  EXPECT_EQ(out.top_ids[2 * 5], 1);
  EXPECT_EQ(out.top_ids[2 * 5 + 1], -1);  // fewer non-NaN logits than asked
  EXPECT_EQ(out.top_ids[2 * 4], 0);       // +inf ties: lower id first
  EXPECT_EQ(out.top_ids[2 * 4 + 1], 2);
}

TEST(CpuSampleRowsTest, GreedyIsTheFirstMaximum) {
  const std::vector<float> logits = {1.0f, 3.0f, kNan, 3.0f, 2.0f};
  SampleRowParams params;  // temperature 0
  const SampleOutputs out =
      RunSampleRows(Cpu(), DType::kFloat32, logits, 1, 5, {params}, /*num_top=*/0);
  EXPECT_EQ(out.tokens[0], 1);
  EXPECT_EQ(out.num_kept[0], 1);
}

// The draws of one row over many draw indices, against the renormalised kept distribution.
TEST(CpuSampleRowsTest, DrawsFollowTheKeptDistribution) {
  std::mt19937_64 rng(99);
  const int64_t vocab = 64, draws = 60000;
  std::vector<float> row(vocab);
  std::normal_distribution<float> normal(0.0f, 1.5f);
  for (float& x : row) x = normal(rng);
  row[3] = row[9];  // a tie
  SampleRowParams params;
  params.temperature = 0.8f;
  params.top_k = 30;
  params.top_p = 0.9f;
  params.min_p = 0.02f;
  params.set_seed(12345);
  std::vector<float> logits;
  std::vector<SampleRowParams> all;
  for (int64_t d = 0; d < draws; ++d) {
    logits.insert(logits.end(), row.begin(), row.end());
    params.set_draw(static_cast<uint64_t>(d));
    all.push_back(params);
  }
  const SampleOutputs out = RunSampleRows(Cpu(), DType::kFloat32, logits, draws, vocab, all, 0);
  std::map<int32_t, int64_t> counts;
  for (int32_t t : out.tokens) ++counts[t];

  const Reference ref = ReferenceRow(row, params);
  ASSERT_FALSE(ref.ambiguous);
  ASSERT_GT(ref.kept.size(), 5u);
  // Chi-square of the counts against the kept distribution p, or against another one q.
  auto chi_square = [&](const std::vector<int32_t>& kept) {
    double total = 0.0;
    for (int32_t id : kept) total += std::exp((row[id] - row[ref.order[0]]) / 0.8);
    double chi = 0.0;
    int64_t outside = draws;
    for (int32_t id : kept) {
      const double expected = draws * std::exp((row[id] - row[ref.order[0]]) / 0.8) / total;
      const double got = counts.count(id) ? static_cast<double>(counts[id]) : 0.0;
      chi += (got - expected) * (got - expected) / expected;
      outside -= static_cast<int64_t>(got);
    }
    return outside > 0 ? std::numeric_limits<double>::infinity() : chi;
  };
  const double df = static_cast<double>(ref.kept.size() - 1);
  const double bound = df + 6.0 * std::sqrt(2.0 * df);  // about p < 1e-5 for this df
  EXPECT_LT(chi_square(ref.kept), bound);
  // A filter one token off fails: one token fewer kept, or one more.
  std::vector<int32_t> fewer(ref.kept.begin(), ref.kept.end() - 1);
  EXPECT_GT(chi_square(fewer), bound);
  std::vector<int32_t> more = ref.kept;
  more.push_back(ref.order[ref.kept.size()]);
  EXPECT_GT(chi_square(more), bound);
}

TEST(CpuSampleRowsTest, SeedAndDrawMakeTheDraw) {
  std::mt19937_64 rng(3);
  const int64_t vocab = 1000, rows = 200;
  std::vector<float> row = test_util::RandomNormal(vocab, 3, 2.0f), logits;
  std::vector<SampleRowParams> params(rows);
  for (int64_t p = 0; p < rows; ++p) {
    logits.insert(logits.end(), row.begin(), row.end());
    params[p].temperature = 1.0f;
    params[p].set_seed(p % 2 == 0 ? 5 : 6);
    params[p].set_draw(static_cast<uint64_t>(p / 2));
  }
  const SampleOutputs a = RunSampleRows(Cpu(), DType::kFloat32, logits, rows, vocab, params, 0);
  const SampleOutputs b = RunSampleRows(Cpu(), DType::kFloat32, logits, rows, vocab, params, 0);
  EXPECT_EQ(a.tokens, b.tokens);
  int same_seed_differs = 0, seeds_differ = 0;
  for (int64_t p = 2; p < rows; p += 2) same_seed_differs += a.tokens[p] != a.tokens[p - 2];
  for (int64_t p = 0; p < rows; p += 2) seeds_differ += a.tokens[p] != a.tokens[p + 1];
  EXPECT_GT(same_seed_differs, rows / 4);
  EXPECT_GT(seeds_differ, rows / 4);
}

}  // namespace
}  // namespace pagedllm::kernels
