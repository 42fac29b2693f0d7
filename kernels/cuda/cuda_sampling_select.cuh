// Block-wide building blocks of CudaOps::SampleRows (cuda_sampling.cu): reading a row (or a slice
// of it) of logits across vocab shards, deterministic block reductions, and SelectPrefix, the
// radix select of a prefix of the order (logit descending, id ascending) by a count or by a
// fixed-point mass. Every function here is called by all threads of a block of kThreads threads.
// Nothing depends on the order in which threads or atomics run, so results are deterministic.
// Include only from cuda_sampling.cu.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/cuda_kernel_util.cuh"
#include "kernels/sampling_math.h"

namespace pagedllm::kernels::sample_select {

namespace sm = sampling;
using cuda::ToFloat;
using cuda::Vec;

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kBins = 256;  // 8-bit radix digits
constexpr int kUnroll = 4;  // groups of 4 logits each thread loads before using them
constexpr uint32_t kNoBin = 0xFFFFFFFFu;
constexpr uint32_t kFullMask = 0xFFFFFFFFu;
constexpr int32_t kAllIds = 0x7FFFFFFF;

// Every non-NaN logit: the prefix end that keeps all of them.
__device__ constexpr sm::PrefixEnd kWholeOrder{0u, kAllIds};

// The logit whose order key is `key` (the inverse of sm::OrderKey; +0 for a zero).
__device__ __forceinline__ float KeyToLogit(uint32_t key) {
  return __uint_as_float((key & 0x80000000u) != 0 ? (key & 0x7FFFFFFFu) : ~key);
}

// (key, id) packed so that a larger value is earlier in the order; 0 means none.
__device__ __forceinline__ unsigned long long Pack(uint32_t key, int32_t id) {
  return (static_cast<unsigned long long>(key) << 32) | (0xFFFFFFFFu - static_cast<uint32_t>(id));
}
__device__ __forceinline__ int32_t PackedId(unsigned long long packed) {
  return static_cast<int32_t>(0xFFFFFFFFu - static_cast<uint32_t>(packed));
}
__device__ __forceinline__ uint32_t PackedKey(unsigned long long packed) {
  return static_cast<uint32_t>(packed >> 32);
}

// The low bits of sm::OrderKey(ToFloat(x)) that are the same for every x of type T (all zeros for
// a positive key, all ones for a negative one): bf16 and fp16 carry 8 and 11 significant bits.
template <typename T>
struct KeyBits {
  static constexpr int kFixedLowBits = 0;
};
template <>
struct KeyBits<__nv_bfloat16> {
  static constexpr int kFixedLowBits = 16;
};
template <>
struct KeyBits<__half> {
  static constexpr int kFixedLowBits = 13;
};

// One row's logits across its vocab shards, and the groups of 4 ids [group_begin, group_end) the
// block works on (the whole row, or one slice). Ids >= vocab read as NaN (never eligible).
template <typename T>
struct RowReader {
  const T* shard0;       // row p of shard 0
  int64_t shard_stride;  // elements from a row of shard r to the same row of shard r + 1
  int32_t vocab_local;
  int32_t vocab;
  int32_t num_groups;  // groups of 4 ids in the row: ceil(vocab / 4)
  int32_t group_begin;
  int32_t group_end;
  bool vectorized;  // one shard and rows aligned to 4 elements: a group is one load

  __device__ float Load(int32_t id) const {
    const int32_t shard = id / vocab_local;
    return ToFloat(shard0[shard * shard_stride + (id - shard * vocab_local)]);
  }

  __device__ void LoadGroup(int32_t group, float (&v)[4]) const {
    const int32_t id0 = 4 * group;
    if (vectorized && id0 + 3 < vocab) {
      const Vec<T, 4> x = *reinterpret_cast<const Vec<T, 4>*>(shard0 + id0);
#pragma unroll
      for (int k = 0; k < 4; ++k) v[k] = ToFloat(x.v[k]);
      return;
    }
    int32_t shard = id0 / vocab_local;
    int32_t col = id0 - shard * vocab_local;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if (id0 + k >= vocab) {
        v[k] = __uint_as_float(0x7FC00000u);
        continue;
      }
      if (col == vocab_local) {
        ++shard;
        col = 0;
      }
      v[k] = ToFloat(shard0[shard * shard_stride + col]);
      ++col;
    }
  }
};

// Calls fn(group, v) for every group of the reader's range, with v its 4 logits; groups past the
// end come with NaN. Every lane of a warp makes the same calls (warp collectives inside fn are
// safe).
template <typename T, typename Fn>
__device__ __forceinline__ void ForEachGroup(const RowReader<T>& reader, Fn&& fn) {
  const int lane = threadIdx.x & 31;
  for (int32_t chunk = reader.group_begin; chunk < reader.group_end; chunk += kThreads * kUnroll) {
    const int32_t first = chunk + (threadIdx.x & ~31) * kUnroll + lane;
    float v[kUnroll][4];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int32_t group = first + 32 * u;
      if (group < reader.group_end) {
        reader.LoadGroup(group, v[u]);
      } else {
#pragma unroll
        for (int k = 0; k < 4; ++k) v[u][k] = __uint_as_float(0x7FC00000u);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) fn(first + 32 * u, v[u]);
  }
}

struct Shared {
  uint32_t bin_count[kBins];
  unsigned long long bin_mass[kBins];
  // The bin a histogram scan chose: what lies before it in the scan order, and its contents.
  uint32_t chosen_bin;
  uint32_t count_before;
  unsigned long long mass_before;
  uint32_t chosen_count;
  unsigned long long chosen_mass;
  // Block reductions: one value per warp.
  unsigned long long reduce_u64[kWarps];
  double reduce_double[kWarps];
  float reduce_float[kWarps];
  int counter;  // a slot counter for gathers
  int found;    // a result broadcast by one warp
};

// The reduction of `value` over the block with `op` (associative and commutative), in a fixed
// order, so every run gives the same bits; every thread gets the result.
template <typename V, typename Op>
__device__ __forceinline__ V BlockReduce(V value, V* scratch, Op op) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    value = op(value, __shfl_xor_sync(kFullMask, value, offset));
  }
  if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = value;
  __syncthreads();
  V result = scratch[0];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) result = op(result, scratch[w]);
  __syncthreads();
  return result;
}

__device__ __forceinline__ unsigned long long SumU64(unsigned long long a, unsigned long long b) {
  return a + b;
}
__device__ __forceinline__ unsigned long long MaxU64(unsigned long long a, unsigned long long b) {
  return a > b ? a : b;
}
__device__ __forceinline__ unsigned long long MinU64(unsigned long long a, unsigned long long b) {
  return a < b ? a : b;
}
__device__ __forceinline__ double SumDouble(double a, double b) { return a + b; }

// Adds (1, mass) to `bin` of the shared histogram for each lane whose bin is not kNoBin, one
// atomic per distinct bin and warp. Every lane of the warp must call it.
template <bool kMass>
__device__ __forceinline__ void HistogramAdd(Shared& sh, uint32_t bin, uint64_t mass) {
  if (!__any_sync(kFullMask, bin != kNoBin)) return;
  const uint32_t peers = __match_any_sync(kFullMask, bin);
  if (bin == kNoBin) return;
  const bool leader = (threadIdx.x & 31) == static_cast<unsigned>(__ffs(peers) - 1);
  if (kMass) {
    // Weights are below 2^41: sum the high and low 20-bit parts separately in 32 bits.
    const uint32_t high = __reduce_add_sync(peers, static_cast<uint32_t>(mass >> 20));
    const uint32_t low = __reduce_add_sync(peers, static_cast<uint32_t>(mass & 0xFFFFFu));
    if (leader) atomicAdd(&sh.bin_mass[bin], (static_cast<unsigned long long>(high) << 20) + low);
  }
  if (leader) atomicAdd(&sh.bin_count[bin], static_cast<uint32_t>(__popc(peers)));
}

// What a prefix must reach: `min_count` elements, and (kMass) a mass of at least `threshold`.
struct Criterion {
  uint32_t min_count;
  double threshold;
};
template <bool kMass>
__device__ __forceinline__ bool Reached(const Criterion& c, uint32_t count, uint64_t mass) {
  return count >= c.min_count && (!kMass || static_cast<double>(mass) >= c.threshold);
}

// Warp 0 scans the histogram in order (bins descending when `descending`) from a prefix of
// (count, mass) and stores in sh the first bin where the criterion is reached, with the count and
// mass of the bins scanned before it. Returns through sh.chosen_bin = kNoBin when none reaches it.
// Call from every thread; ends with a barrier.
template <bool kMass, bool kDescending>
__device__ void ScanBins(Shared& sh, const Criterion& criterion, uint32_t count0, uint64_t mass0) {
  if (threadIdx.x < 32) {
    const int lane = threadIdx.x;
    constexpr int kPerLane = kBins / 32;
    auto bin_at = [](int lane_index, int j) {
      return kDescending ? kBins - 1 - (lane_index * kPerLane + j) : lane_index * kPerLane + j;
    };
    uint32_t lane_count = 0;
    uint64_t lane_mass = 0;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      lane_count += sh.bin_count[bin_at(lane, j)];
      if (kMass) lane_mass += sh.bin_mass[bin_at(lane, j)];
    }
    uint32_t count = lane_count;  // inclusive scan over lanes
    uint64_t mass = lane_mass;
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1) {
      const uint32_t c = __shfl_up_sync(kFullMask, count, offset);
      const uint64_t m = __shfl_up_sync(kFullMask, static_cast<unsigned long long>(mass), offset);
      if (lane >= offset) {
        count += c;
        mass += m;
      }
    }
    count = count - lane_count + count0;
    mass = mass - lane_mass + mass0;
    uint32_t found_bin = kNoBin, before_count = 0;
    uint64_t before_mass = 0;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      const int bin = bin_at(lane, j);
      const uint32_t next_count = count + sh.bin_count[bin];
      const uint64_t next_mass = mass + (kMass ? sh.bin_mass[bin] : 0);
      if (found_bin == kNoBin && sh.bin_count[bin] > 0 &&
          Reached<kMass>(criterion, next_count, next_mass)) {
        found_bin = static_cast<uint32_t>(bin);
        before_count = count - count0;
        before_mass = mass - mass0;
      }
      count = next_count;
      mass = next_mass;
    }
    const uint32_t found_lanes = __ballot_sync(kFullMask, found_bin != kNoBin);
    if (found_lanes == 0) {
      if (lane == 0) sh.chosen_bin = kNoBin;
    } else if (lane == __ffs(found_lanes) - 1) {
      sh.chosen_bin = found_bin;
      sh.count_before = before_count;
      sh.mass_before = before_mass;
      sh.chosen_count = sh.bin_count[found_bin];
      sh.chosen_mass = kMass ? sh.bin_mass[found_bin] : 0;
    }
  }
  __syncthreads();
}

__device__ __forceinline__ void ClearBins(Shared& sh) {
  for (int b = threadIdx.x; b < kBins; b += kThreads) {
    sh.bin_count[b] = 0;
    sh.bin_mass[b] = 0;
  }
  __syncthreads();
}

// The row's sampling state shared by the passes.
struct RowState {
  float max_logit;
  float temperature;
};

// The fixed-point weight of a logit (kernels/sampling_math.h).
__device__ __forceinline__ uint64_t FixedWeightOf(float logit, const RowState& row) {
  return sm::FixedWeight(
      sm::ExpNonPositive(sm::Div(sm::Sub(logit, row.max_logit), row.temperature)));
}

// The shortest prefix of the order (over the non-NaN logits of the reader's range) that reaches
// `criterion`, and (kMass) its mass; the whole order if none does. Radix select on the order key
// (rounds of 8 bits, stopping once the bits that T can vary are known), then on the ids of the
// last key's group.
template <bool kMass, typename T>
__device__ sm::PrefixEnd SelectPrefix(const RowReader<T>& reader, const RowState& row,
                                      const Criterion& criterion, Shared& sh,
                                      uint64_t* prefix_mass = nullptr) {
  constexpr int kFixedBits = KeyBits<T>::kFixedLowBits;
  uint32_t prefix = 0, prefix_mask = 0;
  uint32_t count_above = 0;  // elements with a key above the prefix's range
  uint64_t mass_above = 0;
  uint32_t group_count = 0;  // elements whose key is the final prefix
  uint64_t group_mass = 0;
  int shift = 24;
  for (; shift >= 0; shift -= 8) {
    ClearBins(sh);
    ForEachGroup(reader, [&](int32_t, const float(&v)[4]) {
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        uint32_t bin = kNoBin;
        uint64_t mass = 0;
        if (!sm::IsNan(v[k])) {
          const uint32_t key = sm::OrderKey(v[k]);
          if ((key & prefix_mask) == prefix) {
            bin = (key >> shift) & (kBins - 1);
            if (kMass) mass = FixedWeightOf(v[k], row);
          }
        }
        HistogramAdd<kMass>(sh, bin, mass);
      }
    });
    __syncthreads();
    ScanBins<kMass, /*kDescending=*/true>(sh, criterion, count_above, mass_above);
    if (sh.chosen_bin == kNoBin) return kWholeOrder;
    count_above += sh.count_before;
    mass_above += sh.mass_before;
    prefix |= sh.chosen_bin << shift;
    prefix_mask |= static_cast<uint32_t>(kBins - 1) << shift;
    group_count = sh.chosen_count;
    group_mass = sh.chosen_mass;
    if (shift <= kFixedBits) break;
  }
  if (shift > 0) {  // the remaining low bits are the same for every key of T
    const uint32_t low = (1u << shift) - 1;
    prefix |= (prefix & 0x80000000u) != 0 ? 0u : low;
  }
  // The group of equal logits (key == prefix) holds the end: keep its m lowest ids.
  const uint64_t weight = kMass ? group_mass / group_count : 0;
  uint32_t lo = 1, hi = group_count;  // the smallest m in [1, group_count] that reaches
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    if (Reached<kMass>(criterion, count_above + mid, mass_above + mid * weight)) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  const uint32_t m = lo;
  if (prefix_mass != nullptr) *prefix_mass = mass_above + m * weight;
  // The group's lowest and highest ids settle the common cases in one pass.
  unsigned long long min_id = ~0ull, max_id = 0;
  ForEachGroup(reader, [&](int32_t group, const float(&v)[4]) {
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if (!sm::IsNan(v[k]) && sm::OrderKey(v[k]) == prefix) {
        const unsigned long long id = static_cast<unsigned long long>(4 * group + k);
        min_id = id < min_id ? id : min_id;
        max_id = id > max_id ? id : max_id;
      }
    }
  });
  min_id = BlockReduce(min_id, sh.reduce_u64, MinU64);
  max_id = BlockReduce(max_id, sh.reduce_u64, MaxU64);
  if (m == 1) return {prefix, static_cast<int32_t>(min_id)};
  if (m == group_count) return {prefix, static_cast<int32_t>(max_id)};
  // Otherwise the m-th lowest id of the group: radix select on the id (ids < 2^24).
  uint32_t id_prefix = 0, id_mask = 0, count_below = 0;
  const Criterion id_criterion{m, 0.0};
  for (int id_shift = 16; id_shift >= 0; id_shift -= 8) {
    ClearBins(sh);
    ForEachGroup(reader, [&](int32_t group, const float(&v)[4]) {
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const uint32_t id = static_cast<uint32_t>(4 * group + k);
        const bool in_group =
            !sm::IsNan(v[k]) && sm::OrderKey(v[k]) == prefix && (id & id_mask) == id_prefix;
        HistogramAdd<false>(sh, in_group ? (id >> id_shift) & (kBins - 1) : kNoBin, 0);
      }
    });
    __syncthreads();
    ScanBins<false, /*kDescending=*/false>(sh, id_criterion, count_below, 0);
    if (sh.chosen_bin == kNoBin) return {prefix, static_cast<int32_t>(max_id)};  // unreachable
    count_below += sh.count_before;
    id_prefix |= sh.chosen_bin << id_shift;
    id_mask |= static_cast<uint32_t>(kBins - 1) << id_shift;
  }
  return {prefix, static_cast<int32_t>(id_prefix)};
}

}  // namespace pagedllm::kernels::sample_select
