#include "worker/sampling/sampler.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/check.h"
#include "worker/sampling/fast_exp.h"

namespace pagedllm::worker {
namespace {

// A nucleus whose mass is within this much of top_p counts as complete (see the class comment).
constexpr double kTopPTolerance = 1e-6;
// The first chunk the progressive top-p sort orders; it doubles from there.
constexpr size_t kTopPFirstChunk = 64;
// Weights in (0, 1] are bucketed by their top 12 bits (exponent and 3 mantissa bits): bucket
// boundaries are 2^(1/8) apart, and bucket order is weight order.
constexpr int kWeightBucketShift = 20;
constexpr int kNumWeightBuckets = (0x3F800000 >> kWeightBucketShift) + 1;  // 1.0f is the last

// The total order every filter keeps a prefix of: higher logit first, then lower id.
// Callers never pass NaN logits.
struct RanksBefore {
  const float* logits;
  bool operator()(int32_t a, int32_t b) const {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  }
};

struct Candidate {
  int32_t id;
  float weight;  // exp((logit - max_logit) / temperature), in (0, 1]
};

bool ById(const Candidate& a, const Candidate& b) { return a.id < b.id; }

int WeightBucket(float weight) {
  uint32_t bits;
  std::memcpy(&bits, &weight, sizeof(bits));
  return static_cast<int>(bits >> kWeightBucketShift);
}

// The sum of values[0, n) in double, as 8 interleaved partial sums added pairwise: a fixed
// order (the same bits everywhere) that the compiler can vectorise.
double SumToDouble(const float* values, size_t n) {
  constexpr size_t kLanes = 8;
  double lanes[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (size_t k = 0; k < kLanes; ++k) lanes[k] += values[i + k];
  }
  for (; i < n; ++i) lanes[i % kLanes] += values[i];
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
         ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

// Tokens per block when walking a dense distribution: whole blocks are skipped by their sum.
constexpr size_t kDrawBlock = 1024;

// The largest logit's id; ties go to the lowest id. NaN never wins (all NaN: 0).
int32_t ArgMax(const float* logits, int vocab_size) {
  int32_t best = 0;
  float best_value = -std::numeric_limits<float>::infinity();
  for (int32_t i = 0; i < vocab_size; ++i) {
    if (logits[i] > best_value) {
      best_value = logits[i];
      best = i;
    }
  }
  return best;
}

// The k highest-ranked non-NaN ids (fewer if the vocab has fewer), sorted by id. One pass with
// a heap whose front is the worst one kept; for k << V almost every token costs one compare.
std::vector<Candidate> TopK(const float* logits, int vocab_size, size_t k) {
  const RanksBefore ranks_before{logits};
  std::vector<int32_t> heap;  // [<= k]
  heap.reserve(k);
  for (int32_t i = 0; i < vocab_size; ++i) {
    if (std::isnan(logits[i])) continue;
    if (heap.size() < k) {
      heap.push_back(i);
      std::push_heap(heap.begin(), heap.end(), ranks_before);
    } else if (logits[i] > logits[heap.front()]) {  // a later id never wins a tie
      std::pop_heap(heap.begin(), heap.end(), ranks_before);
      heap.back() = i;
      std::push_heap(heap.begin(), heap.end(), ranks_before);
    }
  }
  std::sort(heap.begin(), heap.end());
  std::vector<Candidate> candidates;
  candidates.reserve(heap.size());
  for (int32_t id : heap) candidates.push_back({id, 0.0f});
  return candidates;
}

// Top-p over `candidates`, which follow `num_before` kept tokens of total weight `mass_before`
// in rank order: sorts the candidates into rank order only as far as needed and returns how
// many of them (a prefix) the nucleus keeps. A token is cut once the mass ranked before it
// reaches `threshold`; the first token overall is never cut.
size_t NucleusPrefix(const RanksBefore& ranks_before, size_t num_before, double mass_before,
                     double threshold, std::vector<Candidate>* candidates) {
  auto by_rank = [&](const Candidate& a, const Candidate& b) { return ranks_before(a.id, b.id); };
  std::vector<Candidate>& c = *candidates;
  size_t sorted_end = 0;
  while (sorted_end < c.size()) {
    const size_t chunk_end = std::min(c.size(), std::max(kTopPFirstChunk, 2 * sorted_end));
    std::partial_sort(c.begin() + sorted_end, c.begin() + chunk_end, c.end(), by_rank);
    for (size_t i = sorted_end; i < chunk_end; ++i) {
      if (num_before + i > 0 && mass_before >= threshold) return i;
      mass_before += c[i].weight;
    }
    sorted_end = chunk_end;
  }
  return c.size();
}

// Walks `kept` (sorted by id) and returns where the cumulative weight first passes u01 * total.
int32_t DrawById(const std::vector<Candidate>& kept, double u01) {
  double mass = 0.0;
  for (const Candidate& c : kept) mass += c.weight;
  const double u = u01 * mass;
  double cumulative = 0.0;
  for (const Candidate& c : kept) {
    cumulative += c.weight;
    if (cumulative > u) return c.id;
  }
  // Rounding left u at the total: the last kept token. The argmax (weight 1) is always kept.
  PAGEDLLM_CHECK(!kept.empty(), "sampler kept no token");
  return kept.back().id;
}

// The same over dense weights [vocab_size], 0 for tokens not kept; skips whole blocks by
// their sum and walks token by token only inside the block where u falls.
int32_t DrawDense(const std::vector<float>& weights, double u01) {
  const float* w = weights.data();
  const size_t vocab = weights.size();
  const double u = u01 * SumToDouble(w, vocab);
  double cumulative = 0.0;
  int32_t last_kept = -1;
  for (size_t begin = 0; begin < vocab; begin += kDrawBlock) {
    const size_t end = std::min(vocab, begin + kDrawBlock);
    const double block_mass = SumToDouble(w + begin, end - begin);
    if (block_mass == 0.0) continue;
    if (cumulative + block_mass <= u) {
      cumulative += block_mass;
      for (size_t i = end; i-- > begin;) {
        if (w[i] > 0.0f) {
          last_kept = static_cast<int32_t>(i);
          break;
        }
      }
      continue;
    }
    for (size_t i = begin; i < end; ++i) {
      if (w[i] == 0.0f) continue;
      cumulative += w[i];
      if (cumulative > u) return static_cast<int32_t>(i);
      last_kept = static_cast<int32_t>(i);
    }
  }
  // Rounding left u at the total: the last kept token. The argmax (weight 1) is always kept.
  PAGEDLLM_CHECK(last_kept >= 0, "sampler kept no token");
  return last_kept;
}

}  // namespace

SequenceSampler::SequenceSampler(const SamplingConfig& config, uint64_t fallback_seed)
    : config_(config), rng_(config.seed.value_or(fallback_seed)) {}

double SequenceSampler::NextUniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

SampledToken SequenceSampler::Sample(const float* logits, int vocab_size) {
  PAGEDLLM_CHECK(vocab_size > 0, "vocab_size must be > 0, got ", vocab_size);
  SampledToken result;
  result.token_id =
      config_.temperature == 0.0f ? ArgMax(logits, vocab_size) : SampleRandom(logits, vocab_size);
  if (config_.num_top_logprobs >= 0) {
    FillLogprobs(logits, vocab_size, config_.num_top_logprobs, &result);
  }
  return result;
}

// The kept set is built one of three ways, all giving the same set and the same draw:
//   top-k on:   the k best ids from one heap pass; weights for those k only.
//   top-p only: all weights, their mass per weight bucket; the nucleus ends in the first bucket
//               (from the top) where the cumulative mass reaches top_p, so only that bucket
//               is sorted.
//   otherwise:  all weights, min-p applied in place.
// The draw walks the kept tokens in id order with double sums, so it does not depend on how
// a heap or a partial sort arranged them.
int32_t SequenceSampler::SampleRandom(const float* logits, int vocab_size) {
  float max_logit = -std::numeric_limits<float>::infinity();
  for (int32_t i = 0; i < vocab_size; ++i) max_logit = std::max(max_logit, logits[i]);
  // All -inf/NaN, or a +inf logit: the distribution is degenerate; take the argmax.
  if (!std::isfinite(max_logit)) return ArgMax(logits, vocab_size);

  // The unnormalised probability: 1 for the most likely token, 0 for NaN. Dividing the
  // difference keeps a tiny temperature finite.
  const float temperature = config_.temperature;
  auto weight_of = [&](int32_t id) {
    return FastExpNonPositive((logits[id] - max_logit) / temperature);
  };
  const float min_weight = config_.min_p;  // p >= min_p * p_max  <=>  weight >= min_p
  auto passes_min_p = [&](float w) { return w > 0.0f && w >= min_weight; };
  const RanksBefore ranks_before{logits};
  const double top_p_fraction = config_.top_p - kTopPTolerance;
  const bool use_top_p = config_.top_p < 1.0f;

  std::vector<Candidate> kept;  // [<= vocab_size], sorted by id before the draw
  if (config_.top_k > 0 && config_.top_k < vocab_size) {
    kept = TopK(logits, vocab_size, static_cast<size_t>(config_.top_k));
    double top_k_mass = 0.0;  // what top-p renormalises by
    for (Candidate& c : kept) {
      c.weight = weight_of(c.id);
      top_k_mass += c.weight;
    }
    kept.erase(std::remove_if(kept.begin(), kept.end(),
                              [&](const Candidate& c) { return !passes_min_p(c.weight); }),
               kept.end());
    if (use_top_p) {
      kept.resize(NucleusPrefix(ranks_before, 0, 0.0, top_p_fraction * top_k_mass, &kept));
      std::sort(kept.begin(), kept.end(), ById);
    }
    return DrawById(kept, NextUniform());
  }

  std::vector<float> weights(static_cast<size_t>(vocab_size));  // [vocab_size]
  float* const w = weights.data();
  for (int32_t i = 0; i < vocab_size; ++i) {  // vectorised: no calls, no branches
    w[i] = FastExpNonPositive((logits[i] - max_logit) / temperature);
  }
  if (!use_top_p) {
    if (min_weight > 0.0f) {
      for (int32_t i = 0; i < vocab_size; ++i) w[i] = w[i] >= min_weight ? w[i] : 0.0f;
    }
    return DrawDense(weights, NextUniform());
  }

  std::array<double, kNumWeightBuckets> bucket_mass{};
  for (int32_t i = 0; i < vocab_size; ++i) bucket_mass[WeightBucket(w[i])] += w[i];
  const double total = SumToDouble(w, weights.size());
  const double threshold = top_p_fraction * total;
  int crossing_bucket = kNumWeightBuckets - 1;
  double mass_above = 0.0;
  for (; crossing_bucket > 0; --crossing_bucket) {
    if (mass_above + bucket_mass[crossing_bucket] >= threshold) break;
    mass_above += bucket_mass[crossing_bucket];
  }
  std::vector<Candidate> crossing;  // the tokens of the crossing bucket, in id order
  for (int32_t i = 0; i < vocab_size; ++i) {
    if (!passes_min_p(w[i])) continue;
    const int bucket = WeightBucket(w[i]);
    if (bucket > crossing_bucket) {
      kept.push_back({i, w[i]});
    } else if (bucket == crossing_bucket) {
      crossing.push_back({i, w[i]});
    }
  }
  crossing.resize(NucleusPrefix(ranks_before, kept.size(), mass_above, threshold, &crossing));
  kept.insert(kept.end(), crossing.begin(), crossing.end());
  std::sort(kept.begin(), kept.end(), ById);
  return DrawById(kept, NextUniform());
}

void FillLogprobs(const float* logits, int vocab_size, int num_top_logprobs, SampledToken* token) {
  // log_softmax: logprob(i) = logit(i) - (max + log(sum exp(logit - max))). Each exp is in
  // float (relative error < 3e-7, below what the float result holds), summed in double; the
  // final subtraction is in double.
  float max_logit = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < vocab_size; ++i) max_logit = std::max(max_logit, logits[i]);
  double sum = 0.0;
  float block[kDrawBlock];
  for (int begin = 0; begin < vocab_size; begin += static_cast<int>(kDrawBlock)) {
    const int end = std::min(vocab_size, begin + static_cast<int>(kDrawBlock));
    for (int i = begin; i < end; ++i) {
      block[i - begin] = FastExpNonPositive(logits[i] - max_logit);  // 0 for NaN
    }
    sum += SumToDouble(block, static_cast<size_t>(end - begin));
  }
  const double log_normalizer = double{max_logit} + std::log(sum);
  // Degenerate logits (a +inf, or nothing above -inf): the maxima get log 1, the rest log 0.
  const bool degenerate = !std::isfinite(max_logit);
  auto logprob = [&](int32_t id) {
    if (degenerate) {
      return logits[id] == max_logit ? 0.0f : -std::numeric_limits<float>::infinity();
    }
    return static_cast<float>(double{logits[id]} - log_normalizer);
  };
  token->logprob = logprob(token->token_id);

  token->top.clear();
  if (num_top_logprobs <= 0) return;
  // One pass keeping the best N sorted: fill it with the first N non-NaN ids, then a token
  // needs a logit above the worst kept (a later id never wins a tie; NaN never compares above).
  const RanksBefore ranks_before{logits};
  const size_t n = static_cast<size_t>(num_top_logprobs);
  std::vector<int32_t> best;  // [<= n + 1], sorted by ranks_before
  best.reserve(n + 1);
  int32_t i = 0;
  for (; i < vocab_size && best.size() < n; ++i) {
    if (std::isnan(logits[i])) continue;
    best.insert(std::upper_bound(best.begin(), best.end(), i, ranks_before), i);
  }
  float worst = best.empty() ? 0.0f : logits[best.back()];
  for (; i < vocab_size; ++i) {
    if (!(logits[i] > worst)) continue;
    best.insert(std::upper_bound(best.begin(), best.end(), i, ranks_before), i);
    best.pop_back();
    worst = logits[best.back()];
  }
  token->top.reserve(best.size());
  for (int32_t id : best) token->top.push_back({id, logprob(id)});
}

}  // namespace pagedllm::worker
