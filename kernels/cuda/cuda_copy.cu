// Row copies (Embedding, GatherRows, WriteKvCache, CopyBlocks) and Cast.
//
// The row copies move bytes in the widest word (16, 8, 4, 2 or 1 bytes) that divides the row and
// the base pointers. An index outside its table is a caller bug: the kernel prints it and traps,
// and the next checked CUDA call aborts the process.
#include <algorithm>
#include <cstdio>

#include "kernels/cuda/cuda_kernel_util.cuh"

namespace pagedllm::kernels::cuda {
namespace {

constexpr int kCopyThreads = 256;

// Calls fn(W{}) with W the widest of uint4/uint2/uint32_t/uint16_t/uint8_t that divides
// row_bytes and every pointer.
template <typename Fn>
void DispatchWord(int64_t row_bytes, const void* a, const void* b, const void* c, const void* d,
                  Fn&& fn) {
  const auto fits = [&](int64_t bytes) {
    return row_bytes % bytes == 0 && Aligned(bytes, a, b, c, d);
  };
  if (fits(16)) {
    fn(uint4{});
  } else if (fits(8)) {
    fn(uint2{});
  } else if (fits(4)) {
    fn(uint32_t{});
  } else if (fits(2)) {
    fn(uint16_t{});
  } else {
    fn(uint8_t{});
  }
}

int CopyThreads(int64_t row_words) {
  return static_cast<int>(
      std::min<int64_t>(kCopyThreads, std::max<int64_t>(32, CeilDiv(row_words, 32) * 32)));
}

template <typename W>
__global__ void EmbeddingKernel(const int32_t* __restrict__ ids, const W* __restrict__ table,
                                int64_t vocab_begin, int64_t vocab_rows, W* __restrict__ out,
                                int64_t row_words) {
  const int64_t i = blockIdx.x;
  const int64_t row = static_cast<int64_t>(ids[i]) - vocab_begin;
  W* target = out + i * row_words;
  if (row >= 0 && row < vocab_rows) {
    const W* source = table + row * row_words;
    for (int64_t j = threadIdx.x; j < row_words; j += blockDim.x) target[j] = source[j];
  } else {  // another rank's share of the vocabulary: the all-reduce fills it in
    for (int64_t j = threadIdx.x; j < row_words; j += blockDim.x) target[j] = W{};
  }
}

template <typename W>
__global__ void GatherRowsKernel(const W* __restrict__ x, int64_t x_rows,
                                 const int32_t* __restrict__ indices, W* __restrict__ out,
                                 int64_t row_words) {
  const int64_t i = blockIdx.x;
  const int64_t row = indices[i];
  if (row < 0 || row >= x_rows) {
    if (threadIdx.x == 0) {
      printf("GatherRows: indices[%lld] = %lld is outside x's %lld rows\n",
             static_cast<long long>(i), static_cast<long long>(row),
             static_cast<long long>(x_rows));
    }
    __trap();
  }
  const W* source = x + row * row_words;
  W* target = out + i * row_words;
  for (int64_t j = threadIdx.x; j < row_words; j += blockDim.x) target[j] = source[j];
}

template <typename W>
__global__ void WriteKvCacheKernel(const W* __restrict__ key, const W* __restrict__ value,
                                   const int32_t* __restrict__ slots, W* __restrict__ key_cache,
                                   W* __restrict__ value_cache, int64_t num_slots,
                                   int64_t row_words) {
  const int64_t i = blockIdx.x;
  const int64_t slot = slots[i];
  if (slot < 0) return;  // a padding token
  if (slot >= num_slots) {
    if (threadIdx.x == 0) {
      printf("WriteKvCache: slot_mapping[%lld] = %lld is outside the cache's %lld slots\n",
             static_cast<long long>(i), static_cast<long long>(slot),
             static_cast<long long>(num_slots));
    }
    __trap();
  }
  for (int64_t j = threadIdx.x; j < row_words; j += blockDim.x) {
    key_cache[slot * row_words + j] = key[i * row_words + j];
    value_cache[slot * row_words + j] = value[i * row_words + j];
  }
}

// grid.x: one pair each; grid.y: chunks of kCopyThreads * kWordsPerThread words of the block.
constexpr int kWordsPerThread = 4;

template <typename W>
__global__ void CopyBlocksKernel(W* cache, const int32_t* __restrict__ pairs, int64_t num_blocks,
                                 int64_t block_words) {
  const int64_t pair = blockIdx.x;
  const int64_t src = pairs[2 * pair], dst = pairs[2 * pair + 1];
  if (src < 0 || src >= num_blocks || dst < 0 || dst >= num_blocks) {
    if (threadIdx.x == 0 && blockIdx.y == 0) {
      printf("CopyBlocks: pair %lld (%lld -> %lld) is outside the cache's %lld blocks\n",
             static_cast<long long>(pair), static_cast<long long>(src), static_cast<long long>(dst),
             static_cast<long long>(num_blocks));
    }
    __trap();
  }
  if (src == dst) return;
  const W* source = cache + src * block_words;
  W* target = cache + dst * block_words;
  const int64_t chunk = static_cast<int64_t>(blockDim.x) * kWordsPerThread;
  for (int64_t begin = blockIdx.y * chunk; begin < block_words; begin += gridDim.y * chunk) {
    W words[kWordsPerThread];
#pragma unroll
    for (int k = 0; k < kWordsPerThread; ++k) {
      const int64_t j = begin + k * blockDim.x + threadIdx.x;
      if (j < block_words) words[k] = source[j];
    }
#pragma unroll
    for (int k = 0; k < kWordsPerThread; ++k) {
      const int64_t j = begin + k * blockDim.x + threadIdx.x;
      if (j < block_words) target[j] = words[k];
    }
  }
}

template <typename From, typename To>
__global__ void CastKernel(const From* __restrict__ in, To* __restrict__ out, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    out[i] = FromFloat<To>(ToFloat(in[i]));
  }
}

}  // namespace

void LaunchEmbedding(const int32_t* ids, const void* table, int64_t vocab_begin, int64_t vocab_rows,
                     void* out, int64_t n, int64_t row_bytes, cudaStream_t stream) {
  if (n == 0 || row_bytes == 0) return;
  DispatchWord(row_bytes, table, out, nullptr, nullptr, [&](auto tag) {
    using W = decltype(tag);
    const int64_t row_words = row_bytes / static_cast<int64_t>(sizeof(W));
    EmbeddingKernel<W><<<static_cast<unsigned>(n), CopyThreads(row_words), 0, stream>>>(
        ids, static_cast<const W*>(table), vocab_begin, vocab_rows, static_cast<W*>(out),
        row_words);
  });
}

void LaunchGatherRows(const void* x, int64_t x_rows, const int32_t* indices, void* out, int64_t n,
                      int64_t row_bytes, cudaStream_t stream) {
  if (n == 0 || row_bytes == 0) return;
  DispatchWord(row_bytes, x, out, nullptr, nullptr, [&](auto tag) {
    using W = decltype(tag);
    const int64_t row_words = row_bytes / static_cast<int64_t>(sizeof(W));
    GatherRowsKernel<W><<<static_cast<unsigned>(n), CopyThreads(row_words), 0, stream>>>(
        static_cast<const W*>(x), x_rows, indices, static_cast<W*>(out), row_words);
  });
}

void LaunchWriteKvCache(const void* key, const void* value, const int32_t* slots, void* key_cache,
                        void* value_cache, int64_t n, int64_t num_slots, int64_t row_bytes,
                        cudaStream_t stream) {
  if (n == 0 || row_bytes == 0) return;
  DispatchWord(row_bytes, key, value, key_cache, value_cache, [&](auto tag) {
    using W = decltype(tag);
    const int64_t row_words = row_bytes / static_cast<int64_t>(sizeof(W));
    WriteKvCacheKernel<W><<<static_cast<unsigned>(n), CopyThreads(row_words), 0, stream>>>(
        static_cast<const W*>(key), static_cast<const W*>(value), slots, static_cast<W*>(key_cache),
        static_cast<W*>(value_cache), num_slots, row_words);
  });
}

void LaunchCopyBlocks(void* cache, const int32_t* pairs, int64_t num_pairs, int64_t num_blocks,
                      int64_t block_bytes, cudaStream_t stream) {
  if (num_pairs == 0 || block_bytes == 0) return;
  DispatchWord(block_bytes, cache, nullptr, nullptr, nullptr, [&](auto tag) {
    using W = decltype(tag);
    const int64_t block_words = block_bytes / static_cast<int64_t>(sizeof(W));
    const int threads = CopyThreads(CeilDiv(block_words, kWordsPerThread));
    const int64_t chunks =
        std::min<int64_t>(CeilDiv(block_words, threads * kWordsPerThread), 65535);
    const dim3 grid(static_cast<unsigned>(num_pairs), static_cast<unsigned>(chunks));
    CopyBlocksKernel<W>
        <<<grid, threads, 0, stream>>>(static_cast<W*>(cache), pairs, num_blocks, block_words);
  });
}

void LaunchCast(FloatType from, const void* in, FloatType to, void* out, int64_t n,
                cudaStream_t stream) {
  if (n == 0) return;
  constexpr int kThreads = 256;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(CeilDiv(n, kThreads), 1 << 20));
  DispatchFloat(from, [&](auto from_tag) {
    using From = decltype(from_tag);
    DispatchFloat(to, [&](auto to_tag) {
      using To = decltype(to_tag);
      CastKernel<From, To>
          <<<blocks, kThreads, 0, stream>>>(static_cast<const From*>(in), static_cast<To*>(out), n);
    });
  });
}

}  // namespace pagedllm::kernels::cuda
