// The plan CudaOps::SampleRows (cuda_sampling.cu) runs by: how rows are cut into slices, what
// each slice hands on (SlicePartial, candidates), how a row is sampled once its slices are
// summarised (RowKind), and the block-wide helpers of its kernels (Gumbel scores, a shared-memory
// sort, warp-aggregated appends, a running-sum search). Include only from cuda_sampling.cu.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/cuda_sampling_select.cuh"
#include "kernels/sampling_math.h"
#include "kernels/sampling_params.h"

namespace pagedllm::kernels::sample_select {

constexpr int kMinSliceIds = 4096;    // a row is cut into slices of at least this many ids
constexpr int kMaxSlices = 64;        // and at most this many
constexpr int kMaxCandidates = 1024;  // candidates per slice, at most
constexpr int kMergeCapacity = 8192;  // slices x candidates the merge sorts in shared memory
// Above every Gumbel noise GumbelFromBits gives (16.64), with room for rounding.
constexpr float kMaxGumbel = 16.7f;
// Kernel 1 gathers a slice's likely candidates into shared memory, at most this many.
constexpr int kGatherCapacity = 4096;

// What one block of kernels 1 and 2 found in its slice of a row.
struct SlicePartial {
  unsigned long long best;  // Pack(key, id) of the first maximum above -inf; 0: none
  double sum_exp;           // sum of exp(l - the slice's maximum) over its non-NaN logits
  uint32_t eligible;        // non-NaN logits
  float lowest;             // the smallest logit above -inf; +inf: none
  uint32_t kept;            // kernel 2, full-row draws: kept tokens
  unsigned long long draw;  // kernel 2, full-row draws: Pack(score key, id) of the best score
  unsigned long long mass;  // kernel 2, nucleus rows: fixed-point mass of the slice
};

struct KernelArgs {
  const SampleRowParams* params;   // [P]
  SlicePartial* partials;          // [P, num_slices]
  unsigned long long* candidates;  // [P, num_slices, max_candidates], packed (key, id)
  int num_slices;
  int groups_per_slice;  // groups of 4 ids per slice (the last slice may have fewer)
  int max_candidates;    // min(kMaxCandidates, kMergeCapacity / num_slices)
  int num_top;           // N of the op's top-N outputs
  int32_t* token_ids;    // [P]
  float* logprobs;       // [P]
  int32_t* top_ids;      // [P, num_top] or null
  float* top_logprobs;   // [P, num_top] or null
  int32_t* num_kept;     // [P] or null
};

// How a row is sampled, once its maximum and number of non-NaN logits are known.
enum class RowKind {
  kGreedy,   // temperature 0 or a degenerate row: the argmax
  kTopK,     // a top-k filter with k <= max_candidates: decided on the candidates
  kFull,     // no top-k, no top-p: kernel 2 draws over every slice
  kNucleus,  // top-p without top-k: kernel 2 sums the mass; the nucleus is found among the
             // candidates, or over the whole row when larger
  kSlow,     // top-k with k > max_candidates: over the whole row
};

struct RowSummary {
  float max_logit;
  int32_t argmax;  // the first maximum; 0 when nothing is above -inf
  uint32_t eligible;
  bool degenerate;  // a +inf logit, or none above -inf
};

__device__ RowKind KindOf(const SampleRowParams& params, const RowSummary& row,
                          int max_candidates) {
  if (!(params.temperature > 0.0f) || row.degenerate) return RowKind::kGreedy;
  if (params.top_k > 0 && static_cast<uint32_t>(params.top_k) < row.eligible) {
    return params.top_k <= max_candidates ? RowKind::kTopK : RowKind::kSlow;
  }
  return params.top_p < 1.0f ? RowKind::kNucleus : RowKind::kFull;
}

// How many candidates each slice of a row hands the merge (at most max_candidates): enough for the
// top-N logprobs and for the row's kind (known before the maximum: top_k < vocab stands for
// top_k < the number of non-NaN logits, which only lowers that number).
__device__ int CandidateCount(const SampleRowParams& params, int32_t vocab, int num_top,
                              int max_candidates) {
  if (!(params.temperature > 0.0f)) return num_top;
  if (params.top_k > 0 && params.top_k < vocab) {
    return params.top_k <= max_candidates ? max(params.top_k, num_top) : num_top;
  }
  return params.top_p < 1.0f ? max_candidates : num_top;
}

// The row's maximum and non-NaN count from its slices' partials.
__device__ RowSummary SummarizeRow(const SlicePartial* partials, int num_slices, Shared& sh) {
  unsigned long long best = 0, eligible = 0;
  if (static_cast<int>(threadIdx.x) < num_slices) {
    best = partials[threadIdx.x].best;
    eligible = partials[threadIdx.x].eligible;
  }
  best = BlockReduce(best, sh.reduce_u64, MaxU64);
  eligible = BlockReduce(eligible, sh.reduce_u64, SumU64);
  RowSummary row;
  row.max_logit = best == 0 ? -INFINITY : KeyToLogit(PackedKey(best));
  row.argmax = best == 0 ? 0 : PackedId(best);
  row.eligible = static_cast<uint32_t>(eligible);
  row.degenerate = !isfinite(row.max_logit);
  return row;
}

template <typename T>
__device__ void SetSlice(RowReader<T>& reader, int64_t p, int slice, const KernelArgs& args) {
  reader.shard0 += p * reader.vocab_local;
  reader.group_begin = slice * args.groups_per_slice;
  reader.group_end = min(reader.num_groups, reader.group_begin + args.groups_per_slice);
}

// The Philox block holding the noise of `id`, and the noise word of `id` in it.
__device__ __forceinline__ sm::Philox4 NoiseBlockOf(int32_t id, const SampleRowParams& params) {
  return sm::NoiseBlock(static_cast<uint32_t>(id) >> 2, params.seed_lo, params.seed_hi,
                        params.draw_lo, params.draw_hi);
}
__device__ __forceinline__ uint32_t NoiseWord(const sm::Philox4& block, int32_t id) {
  const int k = id & 3;
  return k == 0 ? block.v[0] : k == 1 ? block.v[1] : k == 2 ? block.v[2] : block.v[3];
}
// Token `id`'s Gumbel-max score, packed so that the larger value wins (ties to the lower id).
__device__ __forceinline__ unsigned long long Score(float scaled, int32_t id,
                                                    const sm::Philox4& block) {
  return Pack(sm::OrderKey(sm::Add(scaled, sm::GumbelFromBits(NoiseWord(block, id)))), id);
}
// Whether a token of scaled logit `scaled` has a weight above 0 and at least min_p.
__device__ __forceinline__ bool KeptByWeight(float scaled, float min_p) {
  if (min_p == 0.0f && scaled >= -80.0f) return true;  // exp(-80) is a normal float
  const float weight = sm::ExpNonPositive(scaled);
  return weight > 0.0f && weight >= min_p;
}

// Sorts v[0, n) descending; n a power of 2. Ends with a barrier.
__device__ void BitonicSortDescending(unsigned long long* v, int n) {
  for (int size = 2; size <= n; size <<= 1) {
    for (int stride = size / 2; stride > 0; stride >>= 1) {
      for (int i = threadIdx.x; i < n / 2; i += kThreads) {
        const int lo = 2 * i - (i & (stride - 1));
        const int hi = lo + stride;
        const bool descending = (lo & size) == 0;
        const unsigned long long a = v[lo], b = v[hi];
        if ((a < b) == descending) {
          v[lo] = b;
          v[hi] = a;
        }
      }
      __syncthreads();
    }
  }
}

// Appends `packed` to list[*counter] for each lane where `take` holds (slots past `capacity` are
// dropped; *counter still counts them), one atomic per warp. Every lane of the warp must call it.
__device__ __forceinline__ void WarpAppend(bool take, unsigned long long packed,
                                           unsigned long long* list, int* counter, int capacity) {
  const uint32_t mask = __ballot_sync(kFullMask, take);
  if (mask == 0) return;
  const int lane = threadIdx.x & 31, leader = __ffs(mask) - 1;
  int base = 0;
  if (lane == leader) base = atomicAdd(counter, __popc(mask));
  base = __shfl_sync(kFullMask, base, leader);
  const int slot = base + __popc(mask & ((1u << lane) - 1));
  if (take && slot < capacity) list[slot] = packed;
}

// The first i < n at which weights[0] + ... + weights[i] reaches `threshold`, or -1.
__device__ int FirstReaching(const uint64_t* weights, int n, double threshold, Shared& sh) {
  if (threadIdx.x < 32) {
    const int lane = threadIdx.x;
    const int per_lane = (n + 31) / 32;
    const int begin = min(n, lane * per_lane), end = min(n, begin + per_lane);
    unsigned long long lane_sum = 0;
    for (int i = begin; i < end; ++i) lane_sum += weights[i];
    unsigned long long inclusive = lane_sum;
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1) {
      const unsigned long long x = __shfl_up_sync(kFullMask, inclusive, offset);
      if (lane >= offset) inclusive += x;
    }
    unsigned long long mass = inclusive - lane_sum;
    int found = -1;
    for (int i = begin; i < end; ++i) {
      mass += weights[i];
      if (static_cast<double>(mass) >= threshold) {
        found = i;
        break;
      }
    }
    const uint32_t lanes = __ballot_sync(kFullMask, found >= 0);
    const int first = __shfl_sync(kFullMask, found, lanes == 0 ? 0 : __ffs(lanes) - 1);
    if (lane == 0) sh.found = lanes == 0 ? -1 : first;
  }
  __syncthreads();
  return sh.found;
}

}  // namespace pagedllm::kernels::sample_select
