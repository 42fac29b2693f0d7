// CudaOps::SampleRows: temperature / top-k / top-p / min-p sampling and logprobs on the GPU,
// picking the same token as the CPU reference (kernels/cpu/cpu_sampling.cc) bit for bit: both use
// the arithmetic of kernels/sampling_math.h.
//
// Each row is cut into S slices of the vocabulary (S > 1 when the batch is too small to fill the
// GPU with one block per row), and three kernels run:
//   1. SliceStatsKernel, one block per (slice, row), in one pass over the slice: its maximum and
//      argmax, its number of non-NaN logits, and sum(exp(l - reference)) for the log-normaliser;
//      then its `count` first elements of the order (logit descending, id ascending), the
//      candidates: every element at or above the count-th largest of the threads' own first
//      elements is gathered into shared memory and sorted there (a radix select over the slice,
//      cuda_sampling_select.cuh, when count > the block size or too many are gathered). The
//      row's first `count` elements are among the union of its slices' candidates, so top-k
//      (k <= count), the top-N logprobs, and a top-p nucleus that fits in `count` are decided on
//      the candidates alone.
//   2. SliceDrawKernel, for rows whose kept set is not confined to the candidates: without top-k
//      and top-p, each slice's Gumbel-max draw and kept count (a token whose scaled logit is more
//      than the largest Gumbel noise below a score already seen cannot win and needs no noise);
//      with top-p only, each slice's fixed-point mass.
//   3. MergeKernel, one block per row: merges the slices, sorts the candidates in shared memory
//      and draws over them (top-k / top-p / min-p decided on the sorted prefix), writes the
//      top-N logprobs. A rare row whose kept set is not decided by its candidates (top-k above
//      `count`, or a nucleus larger than it) is sampled by this block over the whole row with
//      the selections of cuda_sampling_select.cuh.
// The plan (slices, candidate counts, row kinds) and the block helpers are in
// cuda_sampling_plan.cuh. Sums are of integers or in a fixed order, so results are deterministic.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "common/check.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_device.h"
#include "kernels/cuda/cuda_kernel_util.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/cuda_sampling_plan.cuh"
#include "kernels/cuda/cuda_sampling_select.cuh"
#include "kernels/sample_rows_checks.h"
#include "kernels/sampling_math.h"

namespace pagedllm::kernels {
namespace {

namespace sm = sampling;
using sample_select::BitonicSortDescending;
using sample_select::BlockReduce;
using sample_select::CandidateCount;
using sample_select::Criterion;
using sample_select::FirstReaching;
using sample_select::ForEachGroup;
using sample_select::KeptByWeight;
using sample_select::KernelArgs;
using sample_select::KeyToLogit;
using sample_select::kGatherCapacity;
using sample_select::KindOf;
using sample_select::kMaxCandidates;
using sample_select::kMaxGumbel;
using sample_select::kMaxSlices;
using sample_select::kMergeCapacity;
using sample_select::kMinSliceIds;
using sample_select::kThreads;
using sample_select::kWholeOrder;
using sample_select::MaxU64;
using sample_select::NoiseBlockOf;
using sample_select::Pack;
using sample_select::PackedId;
using sample_select::PackedKey;
using sample_select::RowKind;
using sample_select::RowReader;
using sample_select::RowState;
using sample_select::RowSummary;
using sample_select::Score;
using sample_select::SelectPrefix;
using sample_select::SetSlice;
using sample_select::Shared;
using sample_select::SlicePartial;
using sample_select::SumDouble;
using sample_select::SummarizeRow;
using sample_select::SumU64;
using sample_select::WarpAppend;

// Kernel 1: grid (num_slices, P).
template <typename T>
__global__ void __launch_bounds__(kThreads, 2)
    SliceStatsKernel(RowReader<T> reader, KernelArgs args) {
  __shared__ Shared sh;
  const int slice = blockIdx.x;
  const int64_t p = blockIdx.y;
  SetSlice(reader, p, slice, args);
  const SampleRowParams params = args.params[p];

  __shared__ unsigned long long gathered[kGatherCapacity];

  // One pass: each thread's first element of the order, non-NaN count, smallest logit above
  // -inf, and sum of exp(l - reference), the reference a logit it has seen, moved up when a
  // logit exceeds it by more than 8 (so terms stay below e^8). The log-normaliser only feeds
  // logprobs (within 2e-5 of the CPU's): the fast exp will do.
  unsigned long long top = 0;
  uint32_t eligible = 0;
  float lowest = INFINITY, reference = -INFINITY;
  double running_sum = 0.0;
  ForEachGroup(reader, [&](int32_t group, const float(&v)[4]) {
    const float group_max = fmaxf(fmaxf(v[0], v[1]), fmaxf(v[2], v[3]));  // NaN-ignoring
    if (group_max > reference + 8.0f) {
      running_sum *= exp(static_cast<double>(reference) - static_cast<double>(group_max));
      reference = group_max;
    }
    float part = 0.0f;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if (sm::IsNan(v[k])) continue;
      ++eligible;
      top = MaxU64(top, Pack(sm::OrderKey(v[k]), 4 * group + k));
      if (v[k] > -INFINITY) lowest = fminf(lowest, v[k]);
      part += __expf(v[k] - reference);
    }
    if (isfinite(reference)) running_sum += part;
  });
  const unsigned long long thread_top = top;
  // The first maximum above -inf (a -inf maximum means none).
  unsigned long long best = BlockReduce(top, sh.reduce_u64, MaxU64);
  if (PackedKey(best) <= sm::OrderKey(-INFINITY)) best = 0;
  const unsigned long long slice_eligible =
      BlockReduce(static_cast<unsigned long long>(eligible), sh.reduce_u64, SumU64);
  lowest = BlockReduce(lowest, sh.reduce_float, [](float a, float b) { return fminf(a, b); });
  double sum_exp = 0.0;
  const float slice_max = best == 0 ? -INFINITY : KeyToLogit(PackedKey(best));
  if (isfinite(slice_max)) {
    const double term =
        isfinite(reference)
            ? running_sum * exp(static_cast<double>(reference) - static_cast<double>(slice_max))
            : 0.0;
    sum_exp = BlockReduce(term, sh.reduce_double, SumDouble);
  }

  const int count =
      CandidateCount(params, reader.vocab, min(max(params.num_top_logprobs, 0), args.num_top),
                     args.max_candidates);
  unsigned long long* out = args.candidates + (p * args.num_slices + slice) * args.max_candidates;
  bool done = count == 0;
  if (!done && slice_eligible > static_cast<unsigned long long>(count) && count <= kThreads) {
    // The count-th largest of the threads' first elements: the slice's first `count` elements
    // are at or above it, and usually few others are.
    gathered[threadIdx.x] = thread_top;
    __syncthreads();
    BitonicSortDescending(gathered, kThreads);
    const unsigned long long threshold = gathered[count - 1];
    __syncthreads();
    if (threadIdx.x == 0) sh.counter = 0;
    __syncthreads();
    ForEachGroup(reader, [&](int32_t group, const float(&v)[4]) {
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const unsigned long long packed =
            sm::IsNan(v[k]) ? 0 : Pack(sm::OrderKey(v[k]), 4 * group + k);
        WarpAppend(packed != 0 && packed >= threshold, packed, gathered, &sh.counter,
                   kGatherCapacity);
      }
    });
    __syncthreads();
    const int num_gathered = sh.counter;
    if (num_gathered <= kGatherCapacity) {
      int n_pow2 = 1;
      while (n_pow2 < num_gathered) n_pow2 <<= 1;
      for (int i = num_gathered + threadIdx.x; i < n_pow2; i += kThreads) gathered[i] = 0;
      __syncthreads();
      BitonicSortDescending(gathered, n_pow2);
      for (int i = threadIdx.x; i < count; i += kThreads) out[i] = gathered[i];
      done = true;
    }
  }
  if (!done) {  // radix select of the count-th element, then a gather
    const sm::PrefixEnd end =
        slice_eligible > static_cast<unsigned long long>(count)
            ? SelectPrefix<false>(reader, RowState{0.0f, 1.0f},
                                  Criterion{static_cast<uint32_t>(count), 0.0}, sh)
            : kWholeOrder;
    if (threadIdx.x == 0) sh.counter = 0;
    __syncthreads();
    ForEachGroup(reader, [&](int32_t group, const float(&v)[4]) {
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int32_t id = 4 * group + k;
        const bool take = !sm::IsNan(v[k]) && sm::InPrefix(sm::OrderKey(v[k]), id, end);
        WarpAppend(take, take ? Pack(sm::OrderKey(v[k]), id) : 0, out, &sh.counter, count);
      }
    });
    __syncthreads();
    for (int i = sh.counter + threadIdx.x; i < count; i += kThreads) out[i] = 0;
  }
  if (threadIdx.x == 0) {
    SlicePartial& partial = args.partials[p * args.num_slices + slice];
    partial.best = best;
    partial.sum_exp = sum_exp;
    partial.eligible = static_cast<uint32_t>(slice_eligible);
    partial.lowest = lowest;
  }
}

// Kernel 2: grid (num_slices, P); only kFull and kNucleus rows do work.
template <typename T>
__global__ void __launch_bounds__(kThreads, 2)
    SliceDrawKernel(RowReader<T> reader, KernelArgs args) {
  __shared__ Shared sh;
  const int slice = blockIdx.x;
  const int64_t p = blockIdx.y;
  const SampleRowParams params = args.params[p];
  if (!(params.temperature > 0.0f)) return;
  const RowSummary row = SummarizeRow(args.partials + p * args.num_slices, args.num_slices, sh);
  const RowKind kind = KindOf(params, row, args.max_candidates);
  if (kind != RowKind::kFull && kind != RowKind::kNucleus) return;
  SetSlice(reader, p, slice, args);
  SlicePartial& partial = args.partials[p * args.num_slices + slice];
  const float max_logit = row.max_logit, temperature = params.temperature;

  if (kind == RowKind::kNucleus) {
    // Weights below 2^-40 are 0 in fixed point: skip what lies far below the maximum.
    const float cutoff = sm::Mul(-28.5f, temperature);
    unsigned long long mass = 0;
    ForEachGroup(reader, [&](int32_t, const float(&v)[4]) {
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const float diff = sm::Sub(v[k], max_logit);
        if (!(diff >= cutoff)) continue;  // also NaN
        mass += sm::FixedWeight(sm::ExpNonPositive(sm::Div(diff, temperature)));
      }
    });
    mass = BlockReduce(mass, sh.reduce_u64, SumU64);
    if (threadIdx.x == 0) partial.mass = mass;
    return;
  }

  // A lower bound on the row's best score: the argmax (scaled logit 0, always kept) and, where
  // the slice reaches far enough below the maximum for the bound to skip anything, the slice's
  // tokens near the maximum.
  unsigned long long best = Score(0.0f, row.argmax, NoiseBlockOf(row.argmax, params));
  if (sm::Div(sm::Sub(partial.lowest, max_logit), temperature) < -19.0f) {
    const float near = sm::Mul(-3.0f, temperature);
    ForEachGroup(reader, [&](int32_t group, const float(&v)[4]) {
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const float diff = sm::Sub(v[k], max_logit);
        if (!(diff >= near)) continue;  // also NaN
        const float scaled = sm::Div(diff, temperature);
        if (!KeptByWeight(scaled, params.min_p)) continue;
        const int32_t id = 4 * group + k;
        best = MaxU64(best, Score(scaled, id, NoiseBlockOf(id, params)));
      }
    });
    best = BlockReduce(best, sh.reduce_u64, MaxU64);
  }
  // A token scaled below the bound scores below `best` whatever its noise.
  const float bound = fmaxf(sm::Sub(KeyToLogit(PackedKey(best)), kMaxGumbel), sm::kNeverWinsBelow);
  // Without min-p, a token with diff = l - max >= surely_kept is kept (scaled >= -80), and one
  // with diff < surely_below scales below the bound (a 1e-5 margin over the rounding): neither
  // needs the division.
  const bool no_min_p = params.min_p == 0.0f;
  const float surely_kept = sm::Mul(-79.0f, temperature);
  const float surely_below = sm::Mul(sm::Mul(bound, temperature), 1.00001f);
  uint32_t kept = 0;
  ForEachGroup(reader, [&](int32_t group, const float(&v)[4]) {
    sm::Philox4 noise;
    bool have_noise = false;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const float diff = sm::Sub(v[k], max_logit);
      if (no_min_p && diff >= surely_kept) {
        ++kept;
        if (diff < surely_below) continue;
      } else {
        if (sm::IsNan(v[k])) continue;
        if (!KeptByWeight(sm::Div(diff, temperature), params.min_p)) continue;
        ++kept;
      }
      const float scaled = sm::Div(diff, temperature);
      if (scaled < bound) continue;
      if (!have_noise) {
        noise = NoiseBlockOf(4 * group, params);
        have_noise = true;
      }
      best = MaxU64(best, Score(scaled, 4 * group + k, noise));
    }
  });
  best = BlockReduce(best, sh.reduce_u64, MaxU64);
  const unsigned long long slice_kept =
      BlockReduce(static_cast<unsigned long long>(kept), sh.reduce_u64, SumU64);
  if (threadIdx.x == 0) {
    partial.draw = best;
    partial.kept = static_cast<uint32_t>(slice_kept);
  }
}

// The draw over the whole row, for rows the candidates do not decide (one block, many passes).
template <typename T>
__device__ void DrawOverRow(const RowReader<T>& reader, const RowState& row,
                            const SampleRowParams& params, RowKind kind, uint64_t total_mass,
                            Shared& sh, unsigned long long* best, unsigned long long* kept) {
  sm::PrefixEnd end = kWholeOrder;
  uint64_t candidate_mass = total_mass;
  const bool top_p = params.top_p < 1.0f;
  if (kind == RowKind::kSlow) {
    const Criterion top_k{static_cast<uint32_t>(params.top_k), 0.0};
    // With top-p, top-p's threshold is a share of the top-k set's mass.
    end = top_p ? SelectPrefix<true>(reader, row, top_k, sh, &candidate_mass)
                : SelectPrefix<false>(reader, row, top_k, sh);
  }
  if (top_p) {
    const Criterion p_criterion{1u, sm::TopPThreshold(params.top_p, candidate_mass)};
    end = sm::ShorterPrefix(end, SelectPrefix<true>(reader, row, p_criterion, sh));
  }
  unsigned long long best_score = 0, count = 0;
  ForEachGroup(reader, [&](int32_t group, const float(&v)[4]) {
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int32_t id = 4 * group + k;
      if (sm::IsNan(v[k]) || !sm::InPrefix(sm::OrderKey(v[k]), id, end)) continue;
      const float scaled = sm::Div(sm::Sub(v[k], row.max_logit), row.temperature);
      if (!KeptByWeight(scaled, params.min_p)) continue;
      ++count;
      if (scaled < sm::kNeverWinsBelow) continue;
      best_score = MaxU64(best_score, Score(scaled, id, NoiseBlockOf(id, params)));
    }
  });
  *best = BlockReduce(best_score, sh.reduce_u64, MaxU64);
  *kept = BlockReduce(count, sh.reduce_u64, SumU64);
}

// Kernel 3: one block per row; dynamic shared memory for the sorted candidates.
template <typename T>
__global__ void __launch_bounds__(kThreads, 2) MergeKernel(RowReader<T> reader, KernelArgs args) {
  extern __shared__ unsigned long long sorted[];  // [pow2 >= num_slices * count]
  __shared__ Shared sh;
  __shared__ uint64_t weights[kMaxCandidates];  // fixed-point weights of sorted[0, scan)
  const int64_t p = blockIdx.x;
  const int num_slices = args.num_slices;
  reader.shard0 += p * reader.vocab_local;
  const SampleRowParams params = args.params[p];
  const int num_top = min(max(params.num_top_logprobs, 0), args.num_top);
  const SlicePartial* partials = args.partials + p * num_slices;
  const RowSummary row = SummarizeRow(partials, num_slices, sh);
  const bool mine = static_cast<int>(threadIdx.x) < num_slices;

  double log_normalizer = 0.0;
  if (!row.degenerate) {
    double term = 0.0;
    if (mine && partials[threadIdx.x].best != 0) {
      const double slice_max = KeyToLogit(PackedKey(partials[threadIdx.x].best));
      term = partials[threadIdx.x].sum_exp * exp(slice_max - static_cast<double>(row.max_logit));
    }
    log_normalizer =
        static_cast<double>(row.max_logit) + log(BlockReduce(term, sh.reduce_double, SumDouble));
  }

  // The union of the slices' candidates, sorted: it starts with the row's first `count`.
  const int count = CandidateCount(params, reader.vocab, num_top, args.max_candidates);
  const int n = num_slices * count;
  int n_pow2 = 1;
  while (n_pow2 < n) n_pow2 <<= 1;
  unsigned long long valid = 0;
  if (count > 0) {
    for (int i = threadIdx.x; i < n_pow2; i += kThreads) {
      sorted[i] =
          i < n ? args.candidates[(p * num_slices + i / count) * args.max_candidates + i % count]
                : 0;
      valid += i < n && sorted[i] != 0;
    }
    __syncthreads();
    BitonicSortDescending(sorted, n_pow2);
  }
  valid = BlockReduce(valid, sh.reduce_u64, SumU64);

  const RowKind kind = KindOf(params, row, args.max_candidates);
  const RowState state{row.max_logit, params.temperature};
  unsigned long long best = Pack(0u, row.argmax), kept = 1;
  auto scaled_of = [&](unsigned long long packed) {
    return sm::Div(sm::Sub(KeyToLogit(PackedKey(packed)), row.max_logit), params.temperature);
  };
  if (kind == RowKind::kFull) {
    unsigned long long draw = 0, slice_kept = 0;
    if (mine) {
      draw = partials[threadIdx.x].draw;
      slice_kept = partials[threadIdx.x].kept;
    }
    best = BlockReduce(draw, sh.reduce_u64, MaxU64);
    kept = BlockReduce(slice_kept, sh.reduce_u64, SumU64);
  } else if (kind == RowKind::kTopK || kind == RowKind::kNucleus) {
    // The kept set is a prefix of sorted[0, scan): the top-k set, or the row's first `count`.
    const int scan = kind == RowKind::kTopK ? params.top_k : min(count, static_cast<int>(valid));
    for (int i = threadIdx.x; i < scan; i += kThreads) {
      weights[i] = sm::FixedWeight(sm::ExpNonPositive(scaled_of(sorted[i])));
    }
    __syncthreads();
    int last = scan - 1;
    bool decided = true;
    if (params.top_p < 1.0f) {
      unsigned long long total = 0;
      if (kind == RowKind::kTopK) {
        for (int i = threadIdx.x; i < scan; i += kThreads) total += weights[i];
      } else if (mine) {
        total = partials[threadIdx.x].mass;
      }
      total = BlockReduce(total, sh.reduce_u64, SumU64);
      const int first = FirstReaching(weights, scan, sm::TopPThreshold(params.top_p, total), sh);
      if (first >= 0) {
        last = first;
      } else {
        decided = kind == RowKind::kTopK;
      }
    }
    if (decided) {
      unsigned long long best_score = 0, count_kept = 0;
      for (int i = threadIdx.x; i <= last; i += kThreads) {
        const float scaled = scaled_of(sorted[i]);
        if (!KeptByWeight(scaled, params.min_p)) continue;
        ++count_kept;
        if (scaled < sm::kNeverWinsBelow) continue;
        const int32_t id = PackedId(sorted[i]);
        best_score = MaxU64(best_score, Score(scaled, id, NoiseBlockOf(id, params)));
      }
      best = BlockReduce(best_score, sh.reduce_u64, MaxU64);
      kept = BlockReduce(count_kept, sh.reduce_u64, SumU64);
    } else {
      unsigned long long total = mine ? partials[threadIdx.x].mass : 0;
      total = BlockReduce(total, sh.reduce_u64, SumU64);
      DrawOverRow(reader, state, params, kind, total, sh, &best, &kept);
    }
  } else if (kind == RowKind::kSlow) {
    DrawOverRow(reader, state, params, kind, 0, sh, &best, &kept);
  }
  if (threadIdx.x != 0) return;

  auto logprob_of = [&](int32_t id) {
    const float logit = reader.Load(id);
    if (row.degenerate) return logit == row.max_logit ? 0.0f : -INFINITY;
    return static_cast<float>(static_cast<double>(logit) - log_normalizer);
  };
  const int32_t token = PackedId(best);
  args.token_ids[p] = token;
  args.logprobs[p] = logprob_of(token);
  if (args.num_kept != nullptr) args.num_kept[p] = static_cast<int32_t>(kept);
  const int reported = min(num_top, static_cast<int>(valid));
  for (int j = 0; j < args.num_top; ++j) {
    const bool has = j < reported;
    const int32_t id = has ? PackedId(sorted[j]) : -1;
    args.top_ids[p * args.num_top + j] = id;
    args.top_logprobs[p * args.num_top + j] = has ? logprob_of(id) : -INFINITY;
  }
}

}  // namespace

void CudaOps::SampleRows(const SampleRowsArgs& args) {
  const kernels::SampleRowsShape shape =
      kernels::CheckSampleRowsArgs(device_, args, /*float32_logits_only=*/false);
  if (shape.rows == 0) return;
  const int64_t rows = shape.rows;
  const int32_t num_groups = static_cast<int32_t>((args.vocab_size + 3) / 4);
  int num_sms = 0;
  PAGEDLLM_CUDA_CHECK(
      cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, device_->ordinal()));
  // Enough slices for about two blocks per SM, each of at least kMinSliceIds ids.
  int64_t slices = std::min<int64_t>({kMaxSlices, cuda::CeilDiv(args.vocab_size, kMinSliceIds),
                                      std::max<int64_t>(1, 2 * num_sms / rows)});
  slices = std::max<int64_t>(1, slices);
  const int groups_per_slice = static_cast<int>(cuda::CeilDiv(num_groups, slices));
  slices = std::max<int64_t>(1, cuda::CeilDiv(num_groups, groups_per_slice));

  KernelArgs kernel_args;
  kernel_args.params = reinterpret_cast<const SampleRowParams*>(args.params.data<int32_t>());
  kernel_args.num_slices = static_cast<int>(slices);
  kernel_args.groups_per_slice = groups_per_slice;
  kernel_args.max_candidates =
      std::min<int>(kMaxCandidates, kMergeCapacity / kernel_args.num_slices);
  const size_t partial_bytes = cuda::CeilDiv(rows * slices * sizeof(SlicePartial), 256) * 256;
  const size_t candidate_bytes =
      static_cast<size_t>(rows * slices * kernel_args.max_candidates) * sizeof(uint64_t);
  char* workspace = static_cast<char*>(Workspace(partial_bytes + candidate_bytes));
  if (workspace == nullptr) return;  // no memory: the failure is recorded for the step
  kernel_args.partials = reinterpret_cast<SlicePartial*>(workspace);
  kernel_args.candidates = reinterpret_cast<unsigned long long*>(workspace + partial_bytes);
  kernel_args.num_top = shape.num_top;
  kernel_args.token_ids = args.token_ids.data<int32_t>();
  kernel_args.logprobs = args.logprobs.data<float>();
  kernel_args.top_ids = shape.num_top > 0 ? args.top_ids.data<int32_t>() : nullptr;
  kernel_args.top_logprobs = shape.num_top > 0 ? args.top_logprobs.data<float>() : nullptr;
  kernel_args.num_kept = args.num_kept.empty() ? nullptr : args.num_kept.data<int32_t>();
  int merge_pow2 = 1;
  while (merge_pow2 < kernel_args.num_slices * kernel_args.max_candidates) merge_pow2 <<= 1;
  const size_t merge_smem = static_cast<size_t>(merge_pow2) * sizeof(unsigned long long);

  const cuda::FloatType dtype = args.logits.dtype() == DType::kFloat32 ? cuda::FloatType::kFloat32
                                : args.logits.dtype() == DType::kBFloat16
                                    ? cuda::FloatType::kBFloat16
                                    : cuda::FloatType::kFloat16;
  cuda::DispatchFloat(dtype, [&](auto zero) {
    using T = decltype(zero);
    RowReader<T> reader;
    reader.shard0 = static_cast<const T*>(args.logits.raw_data());
    reader.shard_stride = rows * shape.vocab_local;
    reader.vocab_local = static_cast<int32_t>(shape.vocab_local);
    reader.vocab = static_cast<int32_t>(args.vocab_size);
    reader.num_groups = num_groups;
    reader.group_begin = 0;
    reader.group_end = num_groups;
    reader.vectorized = args.num_shards == 1 && shape.vocab_local % 4 == 0 &&
                        cuda::Aligned(4 * sizeof(T), reader.shard0);
    const dim3 slice_grid(static_cast<unsigned>(slices), static_cast<unsigned>(rows));
    SliceStatsKernel<T><<<slice_grid, kThreads, 0, stream()>>>(reader, kernel_args);
    SliceDrawKernel<T><<<slice_grid, kThreads, 0, stream()>>>(reader, kernel_args);
    if (merge_smem > 32 * 1024) {  // with the static shared memory, above the default 48 KiB
      PAGEDLLM_CUDA_CHECK(cudaFuncSetAttribute(MergeKernel<T>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(merge_smem)));
    }
    MergeKernel<T>
        <<<static_cast<unsigned>(rows), kThreads, merge_smem, stream()>>>(reader, kernel_args);
  });
  NoteLaunch("SampleRows");
}

}  // namespace pagedllm::kernels
