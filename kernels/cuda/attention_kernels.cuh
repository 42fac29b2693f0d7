// The paged-attention kernels (flash-attention style, online softmax in float32), reading K and V
// through the block tables. One kernel template serves both paths:
//
//   decode  (kDecode = true): a CTA is (sequence, KV head [x 16-head slice], split of the context).
//           Its 16 query rows are the sequence's query tokens x the KV head's GQA group, so every
//           K/V tile is loaded once for the whole group. 4 warps split each 64-key tile (16 keys
//           each) and are merged at the end; long contexts are also split across CTAs
//           (flash-decoding) and merged by ReduceSplitsKernel.
//   prefill (kDecode = false): a CTA is (128 query rows of one sequence, KV head; 64 for float32);
//           8 warps (4) of 16 rows share each 64-key tile. Rows are (token, head of the group)
//           pairs, so a tile of 64 rows covers 64 / group tokens: causal masking follows each row's
//           token position.
//
// Query row R of a sequence (0 <= R < q_len * group) is token R / group, head
// kv_head * group + R % group, at position context_len - q_len + R / group. The host decides
// nothing per sequence: every CTA reads query_start / context_lens itself and exits when the
// sequence is not its kind (decode: q_len <= max_decode_q) or its range is empty, so the launch
// needs no host synchronisation and can be captured in a CUDA graph.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/attention_primitives.cuh"
#include "kernels/cuda/attention_warp_math.cuh"

namespace pagedllm::kernels::attention {

constexpr int kDecodeRows = 16;  // query rows of a decode CTA (one MMA tile)

// Kernel arguments (passed by value). Pointers are device pointers.
struct AttentionArgs {
  const void* query;            // [num_tokens, num_heads, head_dim] T
  const void* key_cache;        // [num_blocks, block_size, num_kv_heads, head_dim] T
  const void* value_cache;      // [num_blocks, block_size, num_kv_heads, head_dim] T
  void* output;                 // [num_tokens, num_heads, head_dim] T
  const int32_t* block_tables;  // [num_seqs, max_blocks]
  const int32_t* query_start;   // [num_seqs + 1]
  const int32_t* context_lens;  // [num_seqs]
  float* partial_out;  // [max_splits, num_seqs, kv_heads * head_tiles, 16, head_dim] or null
  float* partial_ml;   // [max_splits, num_seqs, kv_heads * head_tiles, 16, 2] (max, sum) or null
  int num_seqs;
  int num_heads;
  int num_kv_heads;
  int group;  // num_heads / num_kv_heads
  int block_size;
  int block_shift;   // log2(block_size) when a power of two, else -1
  int max_blocks;    // columns of block_tables
  int head_tiles;    // decode: 16-row slices per KV head, ceil(group / 16)
  int max_decode_q;  // sequences with 1 <= q_len <= this take the decode path
  int max_query_len;  // host only: PagedAttentionParams::max_query_len (0: unknown)
  int split_keys;    // decode: keys per split (a multiple of the tile)
  float scale_log2;  // scale * log2(e): scores live in the log2 domain
};

template <typename T, int kHeadDim, bool kDecode>
struct Config {
  static constexpr bool kFloat = std::is_same_v<T, float>;
  static constexpr bool kWide = kFloat && kHeadDim > 128;  // float32 head_dim 256: smaller tiles
  // Prefill: 128 rows (8 warps) per CTA for 16-bit types, so each K/V tile read from L2 serves
  // twice the rows (64 for float32, whose shared memory is twice as large).
  static constexpr int kWarpsM = kDecode ? 1 : (kFloat ? 4 : 8);  // warps along query rows
  static constexpr int kWarpsN = kDecode ? (kWide ? 2 : 4) : 1;   // warps along keys
  static constexpr int kWarpKeys = kDecode ? 16 : (kWide ? 32 : 64);
  static constexpr int kTileKeys = kWarpsN * kWarpKeys;
  static constexpr int kStages = (!kFloat && kDecode && kHeadDim <= 128) ? 3 : 2;

  static constexpr int kThreads = 32 * kWarpsM * kWarpsN;
  static constexpr int kRows = 16 * kWarpsM;
  static constexpr int kChunk = 16 / sizeof(T);      // elements per 16-byte copy
  static constexpr int kStride = kHeadDim + kChunk;  // smem row: +16 bytes, no bank conflicts
  static constexpr int kChunksPerRow = kHeadDim / kChunk;
  static constexpr int kLoadIters = (kTileKeys * kChunksPerRow + kThreads - 1) / kThreads;
  static constexpr int kQBytes = kRows * kStride * sizeof(T);
  static constexpr int kStageBytes = 2 * kTileKeys * kStride * sizeof(T);  // K tile then V tile
  static constexpr int kKvBytes = kStages * kStageBytes;
  // Epilogue (reuses the K/V stages): per-warp accumulators, per-warp (max, sum), merged (max,
  // sum).
  static constexpr int kMergeBytes =
      (kWarpsN * kRows * kHeadDim + kWarpsN * kRows * 2 + kRows * 2) * sizeof(float);
  static constexpr int kScratchBytes = kFloat ? kWarpsM * kWarpsN * 16 * kWarpKeys * 4 : 0;
  static constexpr int kSmemBytes =
      kQBytes + (kKvBytes > kMergeBytes ? kKvBytes : kMergeBytes) + kScratchBytes;
  static_assert(kHeadDim % 16 == 0, "head_dim must be a multiple of 16");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory over the sm_90 limit");
};

// Prefill: finds the sequence and row tile of prefill CTA `tile` by a warp-wide prefix sum of
// the sequences' tile counts. Called by warp 0; writes {seq, tile_in_seq} (seq = -1: no work).
__device__ __forceinline__ void FindPrefillTile(const AttentionArgs& args, int tile,
                                                int rows_per_tile, int* found) {
  const int lane = threadIdx.x;
  int tiles_before = 0;
  for (int base = 0; base < args.num_seqs; base += 32) {
    const int seq = base + lane;
    int tiles = 0;
    if (seq < args.num_seqs) {
      const int q_len = args.query_start[seq + 1] - args.query_start[seq];
      if (q_len > args.max_decode_q)
        tiles = (q_len * args.group + rows_per_tile - 1) / rows_per_tile;
    }
    int inclusive = tiles;
#pragma unroll
    for (int offset = 1; offset < 32; offset *= 2) {
      const int value = __shfl_up_sync(0xffffffffu, inclusive, offset);
      if (lane >= offset) inclusive += value;
    }
    const int total = __shfl_sync(0xffffffffu, inclusive, 31);
    if (tile < tiles_before + total) {
      const unsigned hits = __ballot_sync(0xffffffffu, tiles_before + inclusive > tile);
      if (lane == __ffs(hits) - 1) {
        // Last row tile first: under the causal mask it has the most keys, and the longest
        // CTAs should start in the first wave, not form the tail.
        found[0] = seq;
        found[1] = tiles - 1 - (tile - (tiles_before + inclusive - tiles));
      }
      return;
    }
    tiles_before += total;
  }
  if (lane == 0) found[0] = -1;
}

// Streams K/V tiles of one (sequence, KV head) into shared memory. Block-table entries for a tile
// are fetched into registers one tile ahead (Fetch) and only used when its copies are issued
// (Issue), so their latency hides behind the previous tile's math.
template <typename T, typename Cfg>
struct KvTileLoader {
  const T* key_cache;
  const T* value_cache;
  const int32_t* table;  // this sequence's block-table row
  int64_t slot_stride;   // elements per cache slot: num_kv_heads * head_dim
  int head_offset;       // kv_head * head_dim
  int block_size, block_shift;
  int kv_begin, kv_end;           // positions [kv_begin, kv_end)
  int block[Cfg::kLoadIters];     // physical block per copy, -1 when the row is out of range
  int in_block[Cfg::kLoadIters];  // offset within the block

  __device__ __forceinline__ void Fetch(int tile) {
#pragma unroll
    for (int i = 0; i < Cfg::kLoadIters; ++i) {
      const int index = threadIdx.x + i * Cfg::kThreads;
      const int pos = kv_begin + tile * Cfg::kTileKeys + index / Cfg::kChunksPerRow;
      block[i] = -1;
      in_block[i] = 0;
      if (index < Cfg::kTileKeys * Cfg::kChunksPerRow && pos < kv_end) {
        const int logical = block_shift >= 0 ? pos >> block_shift : pos / block_size;
        in_block[i] = pos - logical * block_size;
        block[i] = table[logical];
      }
    }
  }

  // Copies the fetched tile into `stage` ([2][kTileKeys][kStride]: keys, then values).
  __device__ __forceinline__ void Issue(T* stage) const {
#pragma unroll
    for (int i = 0; i < Cfg::kLoadIters; ++i) {
      const int index = threadIdx.x + i * Cfg::kThreads;
      if (index < Cfg::kTileKeys * Cfg::kChunksPerRow) {
        const int row = index / Cfg::kChunksPerRow, chunk = index % Cfg::kChunksPerRow;
        const bool valid = block[i] >= 0;
        const int64_t offset =
            valid ? (static_cast<int64_t>(block[i]) * block_size + in_block[i]) * slot_stride +
                        head_offset + chunk * Cfg::kChunk
                  : 0;
        T* dst = stage + row * Cfg::kStride + chunk * Cfg::kChunk;
        CpAsync16(SmemAddress(dst), key_cache + offset, valid);
        CpAsync16(SmemAddress(dst + Cfg::kTileKeys * Cfg::kStride), value_cache + offset, valid);
      }
    }
  }
};

template <typename T, int kHeadDim, bool kDecode>
__global__ void __launch_bounds__(Config<T, kHeadDim, kDecode>::kThreads)
    PagedAttentionKernel(const AttentionArgs args) {
  using Cfg = Config<T, kHeadDim, kDecode>;
  using Math = WarpMath<T, kHeadDim, Cfg::kWarpKeys, Cfg::kStride>;
  constexpr int kKeyTiles = Math::kKeyTiles, kDimTiles = Math::kDimTiles;
  const float kNegInf = __int_as_float(0xff800000);  // -infinity
  extern __shared__ __align__(16) unsigned char smem[];

  // --- Which rows and keys this CTA owns.
  int seq, kv_head, row_base, split = 0;
  if constexpr (kDecode) {
    seq = blockIdx.y;
    kv_head = blockIdx.x / args.head_tiles;
    row_base = (blockIdx.x % args.head_tiles) * kDecodeRows;
    split = blockIdx.z;
  } else {
    __shared__ int found[2];
    kv_head = blockIdx.y;
    if (threadIdx.x < 32) FindPrefillTile(args, blockIdx.x, Cfg::kRows, found);
    __syncthreads();
    seq = found[0];
    if (seq < 0) return;
    row_base = found[1] * Cfg::kRows;
  }
  const int q_begin = args.query_start[seq];
  const int q_len = args.query_start[seq + 1] - q_begin;
  if constexpr (kDecode) {
    if (q_len < 1 || q_len > args.max_decode_q) return;
  }
  // A context longer than the block table is a caller bug; clamping keeps reads in bounds.
  const int context_len = min(args.context_lens[seq], args.max_blocks * args.block_size);
  const int rows_total = q_len * args.group;
  if (row_base >= rows_total) return;
  const int first_pos = context_len - q_len;  // position of query token 0
  const int last_row = min(row_base + Cfg::kRows, rows_total) - 1;
  int kv_begin = 0, kv_end = first_pos + last_row / args.group + 1, num_splits = 1;
  if constexpr (kDecode) {
    num_splits = (context_len + args.split_keys - 1) / args.split_keys;
    if (split >= num_splits) return;
    kv_begin = split * args.split_keys;
    kv_end = min(kv_end, kv_begin + args.split_keys);
  }
  const int num_tiles = max(0, (kv_end - kv_begin + Cfg::kTileKeys - 1) / Cfg::kTileKeys);

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int warp_m = warp / Cfg::kWarpsN, warp_n = warp % Cfg::kWarpsN;
  const T* query = static_cast<const T*>(args.query);
  T* q_smem = reinterpret_cast<T*>(smem);
  T* kv_smem = reinterpret_cast<T*>(smem + Cfg::kQBytes);
  float* scratch = reinterpret_cast<float*>(smem + Cfg::kSmemBytes - Cfg::kScratchBytes) +
                   warp * 16 * Cfg::kWarpKeys;

  // --- Q rows -> shared memory (zeros for rows past the sequence's), with the first K/V tile.
  for (int index = tid; index < Cfg::kRows * Cfg::kChunksPerRow; index += Cfg::kThreads) {
    const int row = index / Cfg::kChunksPerRow, chunk = index % Cfg::kChunksPerRow;
    const int r = row_base + row;
    const bool valid = r < rows_total;
    const T* src = query;
    if (valid) {
      const int64_t token = q_begin + r / args.group;
      src += (token * args.num_heads + kv_head * args.group + r % args.group) * kHeadDim +
             chunk * Cfg::kChunk;
    }
    CpAsync16(SmemAddress(q_smem + row * Cfg::kStride + chunk * Cfg::kChunk), src, valid);
  }

  KvTileLoader<T, Cfg> loader;
  loader.key_cache = static_cast<const T*>(args.key_cache);
  loader.value_cache = static_cast<const T*>(args.value_cache);
  loader.table = args.block_tables + static_cast<int64_t>(seq) * args.max_blocks;
  loader.slot_stride = static_cast<int64_t>(args.num_kv_heads) * kHeadDim;
  loader.head_offset = kv_head * kHeadDim;
  loader.block_size = args.block_size;
  loader.block_shift = args.block_shift;
  loader.kv_begin = kv_begin;
  loader.kv_end = kv_end;
#pragma unroll
  for (int stage = 0; stage < Cfg::kStages - 1; ++stage) {
    loader.Fetch(stage);
    loader.Issue(kv_smem + stage * (Cfg::kStageBytes / sizeof(T)));
    CpAsyncCommit();
  }
  loader.Fetch(Cfg::kStages - 1);

  // This thread's two query rows (g and g + 8 of its warp): the last position each may see.
  // Rows past the sequence's copy the last real row, so they stay finite and need no mask.
  int row_limit[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int r = min(row_base + warp_m * 16 + lane / 4 + 8 * i, rows_total - 1);
    row_limit[i] = first_pos + r / args.group;
  }
  const int min_limit = min(row_limit[0], row_limit[1]);

  float m[2] = {kNegInf, kNegInf}, l[2] = {0.0f, 0.0f};
  float acc[kDimTiles][4];
#pragma unroll
  for (int dn = 0; dn < kDimTiles; ++dn) acc[dn][0] = acc[dn][1] = acc[dn][2] = acc[dn][3] = 0.0f;

  // --- Main loop: kStages-deep cp.async pipeline over key tiles.
  for (int tile = 0; tile < num_tiles; ++tile) {
    CpAsyncWait<Cfg::kStages - 2>();
    __syncthreads();
    loader.Issue(kv_smem +
                 ((tile + Cfg::kStages - 1) % Cfg::kStages) * (Cfg::kStageBytes / sizeof(T)));
    CpAsyncCommit();
    loader.Fetch(tile + Cfg::kStages);

    const T* k_tile = kv_smem + (tile % Cfg::kStages) * (Cfg::kStageBytes / sizeof(T)) +
                      warp_n * Cfg::kWarpKeys * Cfg::kStride;
    const T* v_tile = k_tile + Cfg::kTileKeys * Cfg::kStride;
    float s[kKeyTiles][4];
    Math::Scores(q_smem + warp_m * 16 * Cfg::kStride, k_tile, s, lane);

    const int key0 = kv_begin + tile * Cfg::kTileKeys + warp_n * Cfg::kWarpKeys;
    const bool need_mask = key0 + Cfg::kWarpKeys - 1 > min(min_limit, kv_end - 1);
#pragma unroll
    for (int n = 0; n < kKeyTiles; ++n) {
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int key = key0 + n * 8 + 2 * (lane % 4) + (c & 1);
        s[n][c] *= args.scale_log2;
        if (need_mask && (key > row_limit[c / 2] || key >= kv_end)) s[n][c] = kNegInf;
      }
    }
    // Online softmax per row; the row is spread over the 4 lanes of a quad.
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      float tile_max = kNegInf;
#pragma unroll
      for (int n = 0; n < kKeyTiles; ++n)
        tile_max = fmaxf(tile_max, fmaxf(s[n][2 * i], s[n][2 * i + 1]));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
      const float m_new = fmaxf(m[i], tile_max);
      const float shift = m_new == kNegInf ? 0.0f : m_new;
      const float alpha = exp2f(m[i] - shift);
      m[i] = m_new;
      float sum = 0.0f;
#pragma unroll
      for (int n = 0; n < kKeyTiles; ++n) {
        s[n][2 * i] = exp2f(s[n][2 * i] - shift);
        s[n][2 * i + 1] = exp2f(s[n][2 * i + 1] - shift);
        sum += s[n][2 * i] + s[n][2 * i + 1];
      }
      l[i] = l[i] * alpha + sum;
#pragma unroll
      for (int dn = 0; dn < kDimTiles; ++dn) {
        acc[dn][2 * i] *= alpha;
        acc[dn][2 * i + 1] *= alpha;
      }
    }
    Math::Pv(s, v_tile, acc, scratch, lane);
  }

  // --- Epilogue: merge the kWarpsN warps of each row through shared memory (reusing the stages).
  CpAsyncWait<0>();
  __syncthreads();
  float* merged_acc = reinterpret_cast<float*>(kv_smem);               // [kWarpsN][kRows][D]
  float* warp_ml = merged_acc + Cfg::kWarpsN * Cfg::kRows * kHeadDim;  // [kWarpsN][kRows][2]
  float* row_ml = warp_ml + Cfg::kWarpsN * Cfg::kRows * 2;             // [kRows][2]
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
    const int row = warp_m * 16 + lane / 4 + 8 * i;
    if (lane % 4 == 0) {
      warp_ml[(warp_n * Cfg::kRows + row) * 2] = m[i];
      warp_ml[(warp_n * Cfg::kRows + row) * 2 + 1] = l[i];
    }
  }
  __syncthreads();
  if (tid < Cfg::kRows) {
    float row_max = kNegInf, row_sum = 0.0f;
#pragma unroll
    for (int w = 0; w < Cfg::kWarpsN; ++w)
      row_max = fmaxf(row_max, warp_ml[(w * Cfg::kRows + tid) * 2]);
#pragma unroll
    for (int w = 0; w < Cfg::kWarpsN; ++w) {
      const float mw = warp_ml[(w * Cfg::kRows + tid) * 2];
      if (mw != kNegInf) row_sum += warp_ml[(w * Cfg::kRows + tid) * 2 + 1] * exp2f(mw - row_max);
    }
    row_ml[tid * 2] = row_max;
    row_ml[tid * 2 + 1] = row_sum;
  }
  __syncthreads();
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int row = warp_m * 16 + lane / 4 + 8 * i;
    const float factor = m[i] == kNegInf ? 0.0f : exp2f(m[i] - row_ml[row * 2]);
    float* dst = merged_acc + (warp_n * Cfg::kRows + row) * kHeadDim + 2 * (lane % 4);
#pragma unroll
    for (int dn = 0; dn < kDimTiles; ++dn) {
      *reinterpret_cast<float2*>(dst + dn * 8) =
          make_float2(acc[dn][2 * i] * factor, acc[dn][2 * i + 1] * factor);
    }
  }
  __syncthreads();

  const int valid_rows = min(Cfg::kRows, rows_total - row_base);
  constexpr int kQuads = kHeadDim / 4;
  for (int index = tid; index < valid_rows * kQuads; index += Cfg::kThreads) {
    const int row = index / kQuads, col = (index % kQuads) * 4;
    float4 sum = *reinterpret_cast<const float4*>(merged_acc + row * kHeadDim + col);
#pragma unroll
    for (int w = 1; w < Cfg::kWarpsN; ++w) {
      const float4 part =
          *reinterpret_cast<const float4*>(merged_acc + (w * Cfg::kRows + row) * kHeadDim + col);
      sum.x += part.x, sum.y += part.y, sum.z += part.z, sum.w += part.w;
    }
    if (num_splits == 1) {
      const float row_sum = row_ml[row * 2 + 1];
      const float inv = row_sum > 0.0f ? 1.0f / row_sum : 0.0f;
      const int r = row_base + row;
      const int64_t token = q_begin + r / args.group;
      T* out = static_cast<T*>(args.output) +
               (token * args.num_heads + kv_head * args.group + r % args.group) * kHeadDim + col;
      StoreFour<T>(out, make_float4(sum.x * inv, sum.y * inv, sum.z * inv, sum.w * inv));
    } else {
      const int64_t partial_row =
          ((static_cast<int64_t>(split) * args.num_seqs + seq) * gridDim.x + blockIdx.x) *
              kDecodeRows +
          row;
      *reinterpret_cast<float4*>(args.partial_out + partial_row * kHeadDim + col) = sum;
      if (col == 0) {
        *reinterpret_cast<float2*>(args.partial_ml + partial_row * 2) =
            make_float2(row_ml[row * 2], row_ml[row * 2 + 1]);
      }
    }
  }
}

// Merges the splits of decode sequences that have more than one: grid (kv_heads * head_tiles,
// num_seqs, 16 rows), 128 threads per query row. Threads take (column quad, every kGroups-th
// split), so each has several independent loads in flight, then sum over groups in shared memory.
template <typename T, int kHeadDim>
__global__ void __launch_bounds__(128) ReduceSplitsKernel(const AttentionArgs args) {
  constexpr int kThreads = 128, kQuads = kHeadDim / 4, kGroups = kThreads / kQuads;
  static_assert(kGroups >= 1, "head_dim over 512");
  const float kNegInf = __int_as_float(0xff800000);  // -infinity
  __shared__ float4 group_sums[kGroups][kQuads];
  __shared__ float warp_values[kThreads / 32];
  const int seq = blockIdx.y, row = blockIdx.z;
  const int kv_head = blockIdx.x / args.head_tiles;
  const int row_base = (blockIdx.x % args.head_tiles) * kDecodeRows;
  const int q_begin = args.query_start[seq];
  const int q_len = args.query_start[seq + 1] - q_begin;
  if (q_len < 1 || q_len > args.max_decode_q) return;
  const int context_len = min(args.context_lens[seq], args.max_blocks * args.block_size);
  const int num_splits = (context_len + args.split_keys - 1) / args.split_keys;
  if (num_splits <= 1 || row_base + row >= q_len * args.group) return;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int64_t split_rows = static_cast<int64_t>(args.num_seqs) * gridDim.x * kDecodeRows;
  const int64_t row0 = (static_cast<int64_t>(seq) * gridDim.x + blockIdx.x) * kDecodeRows + row;
  const float* ml = args.partial_ml + row0 * 2;  // split z at ml[z * split_rows * 2]
  const float* part = args.partial_out + row0 * kHeadDim;

  // Block-wide max, then sum, of the splits' (max, sum) pairs.
  float row_max = kNegInf;
  for (int z = tid; z < num_splits; z += kThreads) row_max = fmaxf(row_max, ml[z * split_rows * 2]);
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    row_max = fmaxf(row_max, __shfl_xor_sync(0xffffffffu, row_max, offset));
  }
  if (lane == 0) warp_values[warp] = row_max;
  __syncthreads();
  row_max = fmaxf(fmaxf(warp_values[0], warp_values[1]), fmaxf(warp_values[2], warp_values[3]));
  __syncthreads();
  float row_sum = 0.0f;
  for (int z = tid; z < num_splits; z += kThreads) {
    const float2 pair = *reinterpret_cast<const float2*>(ml + z * split_rows * 2);
    if (pair.x != kNegInf) row_sum += pair.y * exp2f(pair.x - row_max);
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    row_sum += __shfl_xor_sync(0xffffffffu, row_sum, offset);
  }
  if (lane == 0) warp_values[warp] = row_sum;
  __syncthreads();
  row_sum = warp_values[0] + warp_values[1] + warp_values[2] + warp_values[3];

  const int quad = tid % kQuads, group = tid / kQuads;
  if (group < kGroups) {
    float4 sum = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 4
    for (int z = group; z < num_splits; z += kGroups) {
      const float mz = ml[z * split_rows * 2];
      const float4 value =
          *reinterpret_cast<const float4*>(part + z * split_rows * kHeadDim + quad * 4);
      const float weight = mz == kNegInf ? 0.0f : exp2f(mz - row_max);
      sum.x += weight * value.x, sum.y += weight * value.y;
      sum.z += weight * value.z, sum.w += weight * value.w;
    }
    group_sums[group][quad] = sum;
  }
  __syncthreads();
  if (tid < kQuads) {
    float4 sum = group_sums[0][tid];
#pragma unroll
    for (int g = 1; g < kGroups; ++g) {
      sum.x += group_sums[g][tid].x, sum.y += group_sums[g][tid].y;
      sum.z += group_sums[g][tid].z, sum.w += group_sums[g][tid].w;
    }
    const float inv = row_sum > 0.0f ? 1.0f / row_sum : 0.0f;
    const int r = row_base + row;
    const int64_t token = q_begin + r / args.group;
    T* out = static_cast<T*>(args.output) +
             (token * args.num_heads + kv_head * args.group + r % args.group) * kHeadDim + tid * 4;
    StoreFour<T>(out, make_float4(sum.x * inv, sum.y * inv, sum.z * inv, sum.w * inv));
  }
}

}  // namespace pagedllm::kernels::attention
