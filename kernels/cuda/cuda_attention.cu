// CudaOps::PagedAttention: checks the arguments on the host (shapes and dtypes only: the index
// tensors stay on the device), then issues up to three kernels on the device's stream:
//
//   1. decode kernel   grid (kv_heads * head_tiles, num_seqs, max_splits): sequences with
//                      1 <= q_len <= max_decode_q, split over the context (flash-decoding);
//   2. reduce kernel   grid (kv_heads * head_tiles, num_seqs, 16 rows): merges the splits (only
//                      launched when a sequence can have more than one);
//   3. prefill kernel  grid (row-tile bound, kv_heads): every other sequence, 128 query rows per
//                      CTA (64 for float32).
//
// Which sequence is which kind is decided on the device from query_start, so the launch needs
// no synchronisation and is graph-capturable once the workspace is large enough. The number of
// splits comes from an upper bound on the context (max_blocks * block_size) and the GPU's size.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "common/check.h"
#include "kernels/cuda/attention_kernels.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_device.h"
#include "kernels/cuda/cuda_ops.h"

namespace pagedllm::kernels {
namespace {

using attention::AttentionArgs;
using attention::Config;
using attention::kDecodeRows;

// A split streams at least this many keys (2 tiles); measured on H100 at batch 1-8 x 512-4096,
// 128 beats 256 and 512: short contexts are latency-bound, so more, shorter CTAs win even with
// the merge kernel.
constexpr int kMinSplitKeys = 128;

int MultiprocessorCount() {
  static const int count = [] {
    int device = 0, sms = 0;
    PAGEDLLM_CUDA_CHECK(cudaGetDevice(&device));
    PAGEDLLM_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    return sms;
  }();
  return count;
}

// Raises the kernel's dynamic shared-memory limit, once per instantiation (a host call that is
// no stream operation, so it is also safe while a graph is being captured).
template <typename T, int kHeadDim, bool kDecode>
void AllowSharedMemory() {
  static const bool done = [] {
    PAGEDLLM_CUDA_CHECK(cudaFuncSetAttribute(attention::PagedAttentionKernel<T, kHeadDim, kDecode>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             Config<T, kHeadDim, kDecode>::kSmemBytes));
    return true;
  }();
  (void)done;
}

// Decode CTAs the whole GPU holds at once (occupancy x multiprocessors).
template <typename T, int kHeadDim>
int64_t DecodeSlots() {
  static const int64_t slots = [] {
    AllowSharedMemory<T, kHeadDim, true>();
    int per_sm = 0;
    PAGEDLLM_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        &per_sm, attention::PagedAttentionKernel<T, kHeadDim, true>,
        Config<T, kHeadDim, true>::kThreads, Config<T, kHeadDim, true>::kSmemBytes));
    return static_cast<int64_t>(std::max(1, per_sm)) * MultiprocessorCount();
  }();
  return slots;
}

template <typename T, int kHeadDim>
void Launch(AttentionArgs args, int64_t num_tokens, CudaOps& ops) {
  using Decode = Config<T, kHeadDim, true>;
  using Prefill = Config<T, kHeadDim, false>;
  cudaStream_t stream = ops.stream();
  const auto decode_kernel = attention::PagedAttentionKernel<T, kHeadDim, true>;
  const auto prefill_kernel = attention::PagedAttentionKernel<T, kHeadDim, false>;
  AllowSharedMemory<T, kHeadDim, true>();
  AllowSharedMemory<T, kHeadDim, false>();

  // Decode: when the batch fills less than half of the GPU's resident CTAs, split the longest
  // possible context (the block table's width) into floor(slots / CTAs) parts, so that even one
  // sequence fills the GPU once and no partial second wave runs with most SMs idle. A fuller
  // batch is not split: splitting it only adds the merge (measured). On H100, against the earlier
  // ceil(2 * slots / CTAs): 1 x 32k went from 69% to 75% of the copy bandwidth, 8 x 32k from 79%
  // to 92%, 8 x 4096 from 69% to 75%; short contexts split the same (the 128-key minimum rules).
  const int64_t decode_ctas =
      static_cast<int64_t>(args.num_kv_heads) * args.head_tiles * args.num_seqs;
  const int64_t max_context = static_cast<int64_t>(args.max_blocks) * args.block_size;
  const int64_t slots = DecodeSlots<T, kHeadDim>();
  const int64_t wanted_splits = 2 * decode_ctas <= slots ? slots / decode_ctas : 1;
  int64_t split_keys = (max_context + wanted_splits - 1) / wanted_splits;
  split_keys = std::max<int64_t>(split_keys, kMinSplitKeys);
  split_keys = (split_keys + Decode::kTileKeys - 1) / Decode::kTileKeys * Decode::kTileKeys;
  const int64_t max_splits = std::max<int64_t>(1, (max_context + split_keys - 1) / split_keys);
  PAGEDLLM_CHECK(split_keys <= INT32_MAX && max_splits <= 65535, "PagedAttention: context bound ",
                 max_context, " is too long");
  args.split_keys = static_cast<int>(split_keys);
  if (max_splits > 1) {
    const int64_t rows = max_splits * decode_ctas * kDecodeRows;
    const size_t out_bytes = static_cast<size_t>(rows) * kHeadDim * sizeof(float);
    char* workspace = static_cast<char*>(ops.Workspace(out_bytes + rows * 2 * sizeof(float)));
    if (workspace == nullptr) return;  // no memory: the failure is recorded for the step
    args.partial_out = reinterpret_cast<float*>(workspace);
    args.partial_ml = reinterpret_cast<float*>(workspace + out_bytes);
  }
  const dim3 decode_grid(static_cast<unsigned>(args.num_kv_heads * args.head_tiles),
                         static_cast<unsigned>(args.num_seqs), static_cast<unsigned>(max_splits));
  decode_kernel<<<decode_grid, Decode::kThreads, Decode::kSmemBytes, stream>>>(args);
  ops.NoteLaunch("PagedAttention");
  if (max_splits > 1) {
    attention::ReduceSplitsKernel<T, kHeadDim>
        <<<dim3(decode_grid.x, decode_grid.y, kDecodeRows), 128, 0, stream>>>(args);
    ops.NoteLaunch("PagedAttention");
  }

  // Prefill: a sequence of q_len rows needs ceil(q_len * group / kRows) tiles, and only
  // sequences with q_len > max_decode_q are prefill, so this bounds the tiles of any batch.
  // A batch whose longest query is promised to take the decode path has none at all.
  const bool all_decode = args.max_query_len > 0 && args.max_query_len <= args.max_decode_q;
  const int64_t max_prefill_seqs =
      all_decode ? 0 : std::min<int64_t>(args.num_seqs, num_tokens / (args.max_decode_q + 1));
  if (max_prefill_seqs > 0) {
    const int64_t tiles =
        (num_tokens * args.group + Prefill::kRows - 1) / Prefill::kRows + max_prefill_seqs;
    PAGEDLLM_CHECK(tiles <= INT32_MAX, "PagedAttention: ", num_tokens, " tokens is too many");
    const dim3 prefill_grid(static_cast<unsigned>(tiles), static_cast<unsigned>(args.num_kv_heads));
    prefill_kernel<<<prefill_grid, Prefill::kThreads, Prefill::kSmemBytes, stream>>>(args);
    ops.NoteLaunch("PagedAttention");
  }
}

template <typename T>
void LaunchForHeadDim(const AttentionArgs& args, int64_t head_dim, int64_t num_tokens,
                      CudaOps& ops) {
  switch (head_dim) {
    case 16:
      return Launch<T, 16>(args, num_tokens, ops);
    case 32:
      return Launch<T, 32>(args, num_tokens, ops);
    case 64:
      return Launch<T, 64>(args, num_tokens, ops);
    case 80:
      return Launch<T, 80>(args, num_tokens, ops);
    case 96:
      return Launch<T, 96>(args, num_tokens, ops);
    case 128:
      return Launch<T, 128>(args, num_tokens, ops);
    case 256:
      return Launch<T, 256>(args, num_tokens, ops);
    default:
      PAGEDLLM_CHECK(false, "PagedAttention: head_dim ", head_dim,
                     " is not supported on CUDA (16, 32, 64, 80, 96, 128 or 256)");
  }
}

void CheckOnDevice(const char* name, const Tensor& tensor, const Device* device) {
  PAGEDLLM_CHECK(!tensor.empty(), "PagedAttention: ", name, " is an empty tensor");
  PAGEDLLM_CHECK(tensor.device() == device, "PagedAttention: ", name, " ", tensor.ShapeString(),
                 " does not live on this CUDA device");
  PAGEDLLM_CHECK(reinterpret_cast<uintptr_t>(tensor.raw_data()) % 16 == 0, "PagedAttention: ", name,
                 " ", tensor.ShapeString(), " is not 16-byte aligned");
}

}  // namespace

// query, output: [num_tokens, num_heads, head_dim]; key_cache, value_cache: [num_blocks,
// block_size, num_kv_heads, head_dim] (all one float dtype); block_tables: [num_seqs,
// max_blocks], query_start: [num_seqs + 1], context_lens: [num_seqs] (int32).
void CudaOps::PagedAttention(const PagedAttentionParams& p) {
  const struct {
    const char* name;
    const Tensor* tensor;
  } tensors[] = {{"query", &p.query},
                 {"key_cache", &p.key_cache},
                 {"value_cache", &p.value_cache},
                 {"block_tables", &p.block_tables},
                 {"query_start", &p.query_start},
                 {"context_lens", &p.context_lens},
                 {"output", &p.output}};
  for (const auto& [name, tensor] : tensors) CheckOnDevice(name, *tensor, device_);
  const DType dtype = p.query.dtype();
  PAGEDLLM_CHECK(p.key_cache.dtype() == dtype && p.value_cache.dtype() == dtype &&
                     p.output.dtype() == dtype && dtype != DType::kInt32,
                 "PagedAttention: query, caches and output must share one float dtype, got query ",
                 p.query.ShapeString(), ", key_cache ", p.key_cache.ShapeString(), ", value_cache ",
                 p.value_cache.ShapeString(), ", output ", p.output.ShapeString());
  PAGEDLLM_CHECK(p.block_tables.dtype() == DType::kInt32 &&
                     p.query_start.dtype() == DType::kInt32 &&
                     p.context_lens.dtype() == DType::kInt32,
                 "PagedAttention: block_tables, query_start and context_lens must be int32");
  PAGEDLLM_CHECK(
      p.query.rank() == 3 && p.key_cache.rank() == 4 && p.block_tables.rank() == 2 &&
          p.query_start.rank() == 1 && p.context_lens.rank() == 1,
      "PagedAttention: want query [num_tokens, num_heads, head_dim], caches [num_blocks, "
      "block_size, num_kv_heads, head_dim], block_tables [num_seqs, max_blocks], got ",
      p.query.ShapeString(), ", ", p.key_cache.ShapeString(), ", ", p.block_tables.ShapeString());
  const int64_t num_tokens = p.query.dim(0), num_heads = p.query.dim(1), head_dim = p.query.dim(2);
  const int64_t block_size = p.key_cache.dim(1), num_kv_heads = p.key_cache.dim(2);
  const int64_t num_seqs = p.context_lens.dim(0);
  PAGEDLLM_CHECK(p.output.shape() == p.query.shape(), "PagedAttention: output ",
                 p.output.ShapeString(), " must match query ", p.query.ShapeString());
  PAGEDLLM_CHECK(p.value_cache.shape() == p.key_cache.shape() && p.key_cache.dim(3) == head_dim,
                 "PagedAttention: key_cache ", p.key_cache.ShapeString(), " and value_cache ",
                 p.value_cache.ShapeString(),
                 " must both be [num_blocks, block_size, num_kv_heads, ", head_dim, "]");
  PAGEDLLM_CHECK(block_size > 0 && num_kv_heads > 0 && num_heads % num_kv_heads == 0,
                 "PagedAttention: num_heads ", num_heads, " must be a multiple of num_kv_heads ",
                 num_kv_heads);
  PAGEDLLM_CHECK(p.block_tables.dim(0) == num_seqs && p.query_start.dim(0) == num_seqs + 1,
                 "PagedAttention: want block_tables [num_seqs, max_blocks], query_start "
                 "[num_seqs + 1], context_lens [num_seqs], got ",
                 p.block_tables.ShapeString(), ", ", p.query_start.ShapeString(), ", ",
                 p.context_lens.ShapeString());
  PAGEDLLM_CHECK(num_seqs <= 65535, "PagedAttention: ", num_seqs, " sequences is over 65535");
  PAGEDLLM_CHECK(
      p.block_tables.dim(1) * block_size <= INT32_MAX && num_tokens * num_heads <= INT32_MAX,
      "PagedAttention: sizes over int32");
  if (num_seqs == 0 || num_tokens == 0) return;

  AttentionArgs args{};
  args.query = p.query.raw_data();
  args.key_cache = p.key_cache.raw_data();
  args.value_cache = p.value_cache.raw_data();
  args.output = p.output.raw_data();
  args.block_tables = p.block_tables.data<int32_t>();
  args.query_start = p.query_start.data<int32_t>();
  args.context_lens = p.context_lens.data<int32_t>();
  args.num_seqs = static_cast<int>(num_seqs);
  args.num_heads = static_cast<int>(num_heads);
  args.num_kv_heads = static_cast<int>(num_kv_heads);
  args.group = static_cast<int>(num_heads / num_kv_heads);
  args.block_size = static_cast<int>(block_size);
  args.block_shift = (block_size & (block_size - 1)) == 0 ? __builtin_ctzll(block_size) : -1;
  args.max_blocks = static_cast<int>(p.block_tables.dim(1));
  args.head_tiles = (args.group + kDecodeRows - 1) / kDecodeRows;
  args.max_decode_q = std::max(1, args.head_tiles * kDecodeRows / args.group);
  args.scale_log2 = p.scale * 1.4426950408889634f;
  args.max_query_len = p.max_query_len;

  switch (dtype) {
    case DType::kFloat32:
      return LaunchForHeadDim<float>(args, head_dim, num_tokens, *this);
    case DType::kBFloat16:
      return LaunchForHeadDim<__nv_bfloat16>(args, head_dim, num_tokens, *this);
    case DType::kFloat16:
      return LaunchForHeadDim<__half>(args, head_dim, num_tokens, *this);
    default:
      PAGEDLLM_CHECK(false, "PagedAttention: unsupported dtype ", DTypeName(dtype));
  }
}

}  // namespace pagedllm::kernels
