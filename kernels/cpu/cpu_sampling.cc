// CpuOps::SampleRows: the reference of the sampling op (kernels/ops.h, SampleRowsArgs), one row
// per thread-pool item. Each row is gathered from its shards into a contiguous float vector,
// then: the maximum and the raw log-normaliser; the kept prefix from selections over the
// eligible (non-NaN) ids in the order (logit descending, id ascending) — nth_element for top-k,
// a progressive partial sort for top-p —; and the Gumbel-max draw over the kept set with the
// arithmetic of kernels/sampling_math.h, so the CUDA backend picks the same token bit for bit.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "common/check.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/sample_rows_checks.h"
#include "kernels/sampling_math.h"

namespace pagedllm::kernels::cpu {
namespace {

namespace sm = sampling;

constexpr float kInf = std::numeric_limits<float>::infinity();
// The first chunk the progressive top-p sort orders; it doubles from there.
constexpr size_t kTopPFirstChunk = 64;

struct RowResult {
  int32_t token = 0;
  float logprob = 0.0f;
  int32_t num_kept = 1;
  std::vector<int32_t> top_ids;  // [<= num_top]
  std::vector<float> top_logprobs;
};

// Sorts ids into the order every filter keeps a prefix of: higher key first, then lower id.
struct RanksBefore {
  const uint32_t* keys;
  bool operator()(int32_t a, int32_t b) const {
    return keys[a] > keys[b] || (keys[a] == keys[b] && a < b);
  }
};

// Samples one row. logits: [vocab] float32, contiguous.
RowResult SampleRow(const float* logits, int32_t vocab, const SampleRowParams& params) {
  RowResult result;
  float max_logit = -kInf;
  int32_t argmax = 0;  // the first maximum; 0 when nothing is above -inf
  for (int32_t i = 0; i < vocab; ++i) {
    if (logits[i] > max_logit) {
      max_logit = logits[i];
      argmax = i;
    }
  }
  const bool degenerate = !std::isfinite(max_logit);
  double log_normalizer = 0.0;
  if (!degenerate) {
    double sum = 0.0;
    for (int32_t i = 0; i < vocab; ++i) sum += sm::ExpNonPositive(sm::Sub(logits[i], max_logit));
    log_normalizer = static_cast<double>(max_logit) + std::log(sum);
  }
  // Degenerate rows: the maxima get log 1, the rest log 0.
  auto logprob_of = [&](int32_t id) {
    if (degenerate) return logits[id] == max_logit ? 0.0f : -kInf;
    return static_cast<float>(static_cast<double>(logits[id]) - log_normalizer);
  };

  std::vector<uint32_t> keys(static_cast<size_t>(vocab), 0);  // [vocab]; 0 for NaN
  std::vector<int32_t> eligible;                              // non-NaN ids, ascending
  eligible.reserve(static_cast<size_t>(vocab));
  for (int32_t i = 0; i < vocab; ++i) {
    if (sm::IsNan(logits[i])) continue;
    keys[i] = sm::OrderKey(logits[i]);
    eligible.push_back(i);
  }
  const RanksBefore ranks_before{keys.data()};

  if (params.num_top_logprobs > 0) {
    std::vector<int32_t> order = eligible;
    const size_t n = std::min(order.size(), static_cast<size_t>(params.num_top_logprobs));
    std::partial_sort(order.begin(), order.begin() + n, order.end(), ranks_before);
    for (size_t j = 0; j < n; ++j) {
      result.top_ids.push_back(order[j]);
      result.top_logprobs.push_back(logprob_of(order[j]));
    }
  }

  if (params.temperature == 0.0f || degenerate) {
    result.token = argmax;
    result.logprob = logprob_of(argmax);
    return result;
  }

  const float temperature = params.temperature;
  std::vector<float> scaled(static_cast<size_t>(vocab));   // s = (l - max) / T, [vocab]
  std::vector<float> weights(static_cast<size_t>(vocab));  // exp(s), [vocab]
  for (int32_t i = 0; i < vocab; ++i) {
    scaled[i] = sm::Div(sm::Sub(logits[i], max_logit), temperature);
    weights[i] = sm::ExpNonPositive(scaled[i]);
  }
  auto fixed_weight = [&](int32_t id) { return sm::FixedWeight(weights[id]); };

  // The kept prefix of the order; {0, max} keeps every eligible id.
  sm::PrefixEnd end{0u, std::numeric_limits<int32_t>::max()};
  std::vector<int32_t> candidates = std::move(eligible);  // what top-p chooses from
  uint64_t total = 0;                                     // fixed-point mass of the candidates
  if (params.top_k > 0 && static_cast<size_t>(params.top_k) < candidates.size()) {
    const size_t k = static_cast<size_t>(params.top_k);
    std::nth_element(candidates.begin(), candidates.begin() + (k - 1), candidates.end(),
                     ranks_before);
    const int32_t last = candidates[k - 1];
    end = {keys[last], last};
    candidates.resize(k);
  }
  for (int32_t id : candidates) total += fixed_weight(id);
  if (params.top_p < 1.0f) {
    // The shortest prefix whose mass reaches the threshold (at least one token).
    const double threshold = sm::TopPThreshold(params.top_p, total);
    uint64_t mass = 0;
    size_t sorted_end = 0;
    int32_t last = -1;
    while (last < 0 && sorted_end < candidates.size()) {
      const size_t chunk_end =
          std::min(candidates.size(), std::max(kTopPFirstChunk, 2 * sorted_end));
      std::partial_sort(candidates.begin() + sorted_end, candidates.begin() + chunk_end,
                        candidates.end(), ranks_before);
      for (size_t j = sorted_end; j < chunk_end; ++j) {
        mass += fixed_weight(candidates[j]);
        if (static_cast<double>(mass) >= threshold) {
          last = candidates[j];
          break;
        }
      }
      sorted_end = chunk_end;
    }
    if (last >= 0) end = sm::ShorterPrefix(end, {keys[last], last});
  }

  // Gumbel-max over the kept set (the prefix, min-p, and a non-zero weight).
  float best_score = -kInf;
  int32_t token = -1;
  int32_t num_kept = 0;
  uint32_t block_group = ~0u;
  sm::Philox4 block{};
  for (int32_t i = 0; i < vocab; ++i) {
    if (sm::IsNan(logits[i]) || !sm::InPrefix(keys[i], i, end)) continue;
    if (!(weights[i] > 0.0f && weights[i] >= params.min_p)) continue;
    ++num_kept;
    if (scaled[i] < sm::kNeverWinsBelow) continue;
    const uint32_t group = static_cast<uint32_t>(i) >> 2;
    if (group != block_group) {
      block = sm::NoiseBlock(group, params.seed_lo, params.seed_hi, params.draw_lo, params.draw_hi);
      block_group = group;
    }
    const float score = sm::Add(scaled[i], sm::GumbelFromBits(block.v[i & 3]));
    if (score > best_score) {  // ties keep the lower id
      best_score = score;
      token = i;
    }
  }
  PAGEDLLM_CHECK(token >= 0, "SampleRows: no token kept (the most likely one always is)");
  result.token = token;
  result.logprob = logprob_of(token);
  result.num_kept = num_kept;
  return result;
}

}  // namespace

void CpuOps::SampleRows(const SampleRowsArgs& args) {
  const SampleRowsShape shape = CheckSampleRowsArgs(device_, args, /*float32_logits_only=*/true);
  const int64_t rows = shape.rows, vocab_local = shape.vocab_local;
  const int32_t vocab = static_cast<int32_t>(args.vocab_size);
  const auto* params = reinterpret_cast<const SampleRowParams*>(args.params.data<int32_t>());
  for (int64_t p = 0; p < rows; ++p) CheckSampleRowParams(p, params[p], shape.num_top);

  pool_->ParallelFor(rows, [&](int64_t p) {
    std::vector<float> row(static_cast<size_t>(vocab));  // [vocab], gathered from the shards
    for (int r = 0; r < args.num_shards; ++r) {
      const int64_t begin = r * vocab_local;
      const int64_t count = std::max<int64_t>(0, std::min(vocab_local, vocab - begin));
      const float* src = args.logits.data<float>() + (r * rows + p) * vocab_local;
      std::copy(src, src + count, row.begin() + begin);
    }
    const RowResult result = SampleRow(row.data(), vocab, params[p]);
    args.token_ids.data<int32_t>()[p] = result.token;
    args.logprobs.data<float>()[p] = result.logprob;
    if (!args.num_kept.empty()) args.num_kept.data<int32_t>()[p] = result.num_kept;
    for (int j = 0; j < shape.num_top; ++j) {
      const bool has = j < static_cast<int>(result.top_ids.size());
      args.top_ids.data<int32_t>()[p * shape.num_top + j] = has ? result.top_ids[j] : -1;
      args.top_logprobs.data<float>()[p * shape.num_top + j] = has ? result.top_logprobs[j] : -kInf;
    }
  });
}

}  // namespace pagedllm::kernels::cpu
