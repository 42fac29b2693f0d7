// attention_bench (CUDA source for its read-bandwidth kernel): CudaOps::PagedAttention speed on one
// GPU, against floors measured in the same run.
//
//   decode:  batch x context in {1, 8, 32, 128} x {512, 4096, 32768}, Llama-3-8B attention
//            (32 query heads, 8 KV heads, head_dim 128, bf16, block size 16, shuffled blocks);
//            achieved bandwidth = (K + V bytes read + Q + output bytes) / time, against the
//            device-to-device cudaMemcpy bandwidth (bytes read + written; the better of direct
//            calls and a graph) and a read-only kernel's bandwidth (attention mostly reads).
//   prefill: 1 x 4096 and 8 x 1024 tokens (whole prompts, causal), TFLOP/s counting
//            4 * heads * head_dim per (query, key) pair attended.
//
// Each op is timed with CUDA events around a CUDA graph of `kReps` back-to-back calls (best of 3),
// so host launch overhead is excluded, as in a graph-captured decode step. Prints Markdown tables.
//   attention_bench [--quick]   (--quick: contexts up to 4096 only)
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "common/check.h"
#include "kernels/device.h"
#include "kernels/ops.h"

namespace pagedllm::kernels {
namespace {

constexpr int kNumHeads = 32, kNumKvHeads = 8, kHeadDim = 128, kBlockSize = 16;
constexpr int kReps = 20;

#define BENCH_CUDA(call)                                                                        \
  do {                                                                                          \
    const cudaError_t bench_error_ = (call);                                                    \
    PAGEDLLM_CHECK(bench_error_ == cudaSuccess, #call, ": ", cudaGetErrorString(bench_error_)); \
  } while (0)

Tensor MustAllocate(Device& device, DType dtype, std::vector<int64_t> shape) {
  absl::StatusOr<Tensor> tensor = device.Allocate(dtype, std::move(shape));
  PAGEDLLM_CHECK_OK(tensor.status());
  return *std::move(tensor);
}

Tensor MustUpload(Device& device, std::vector<int64_t> shape, const std::vector<int32_t>& values) {
  absl::StatusOr<Tensor> tensor = device.FromHost<int32_t>(DType::kInt32, std::move(shape), values);
  PAGEDLLM_CHECK_OK(tensor.status());
  return *std::move(tensor);
}

// Milliseconds per call of `body`, from a CUDA graph of kReps calls (stream capture).
double TimeMs(Device& device, const std::function<void()>& body) {
  cudaStream_t stream = static_cast<cudaStream_t>(device.native_stream());
  body();  // warm-up: sizes workspaces before capture
  device.Synchronize();
  BENCH_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < kReps; ++i) body();
  cudaGraph_t graph = nullptr;
  BENCH_CUDA(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec = nullptr;
  BENCH_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  BENCH_CUDA(cudaGraphLaunch(exec, stream));
  device.Synchronize();
  cudaEvent_t start, stop;
  BENCH_CUDA(cudaEventCreate(&start));
  BENCH_CUDA(cudaEventCreate(&stop));
  float best = 1e30f;
  for (int trial = 0; trial < 3; ++trial) {
    BENCH_CUDA(cudaEventRecord(start, stream));
    BENCH_CUDA(cudaGraphLaunch(exec, stream));
    BENCH_CUDA(cudaEventRecord(stop, stream));
    BENCH_CUDA(cudaEventSynchronize(stop));
    float ms = 0.0f;
    BENCH_CUDA(cudaEventElapsedTime(&ms, start, stop));
    best = std::min(best, ms);
  }
  BENCH_CUDA(cudaEventDestroy(start));
  BENCH_CUDA(cudaEventDestroy(stop));
  BENCH_CUDA(cudaGraphExecDestroy(exec));
  BENCH_CUDA(cudaGraphDestroy(graph));
  return best / kReps;
}

// Reads `n` 16-byte words; writes only if their XOR is a value it never is (keeps the loads).
__global__ void ReadKernel(const uint4* data, int64_t n, uint4* sink) {
  uint4 acc = make_uint4(0, 0, 0, 0);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint4 v = data[i];
    acc.x ^= v.x, acc.y ^= v.y, acc.z ^= v.z, acc.w ^= v.w;
  }
  if (acc.x == 0x12345678u && acc.y == 0x9abcdef0u) *sink = acc;
}

struct Floors {
  double copy_graph_gbs = 0, copy_direct_gbs = 0, read_gbs = 0;
};

// Device-to-device cudaMemcpy bandwidth (bytes read + written), in a graph and as direct calls,
// and a read-only kernel's bandwidth, over 1 GiB.
Floors MeasureFloors(Device& device) {
  const int64_t bytes = int64_t{1} << 30;
  cudaStream_t stream = static_cast<cudaStream_t>(device.native_stream());
  Tensor a = MustAllocate(device, DType::kInt32, {bytes / 4});
  Tensor b = MustAllocate(device, DType::kInt32, {bytes / 4});
  BENCH_CUDA(cudaMemsetAsync(a.raw_data(), 1, bytes, stream));
  Floors f;
  f.copy_graph_gbs =
      2.0 * bytes /
      (TimeMs(device, [&] { device.CopyDeviceToDevice(b.raw_data(), a.raw_data(), bytes); }) *
       1e-3) /
      1e9;
  cudaEvent_t start, stop;
  BENCH_CUDA(cudaEventCreate(&start));
  BENCH_CUDA(cudaEventCreate(&stop));
  float best = 1e30f;
  for (int trial = 0; trial < 3; ++trial) {
    BENCH_CUDA(cudaEventRecord(start, stream));
    for (int i = 0; i < kReps; ++i) {
      BENCH_CUDA(
          cudaMemcpyAsync(b.raw_data(), a.raw_data(), bytes, cudaMemcpyDeviceToDevice, stream));
    }
    BENCH_CUDA(cudaEventRecord(stop, stream));
    BENCH_CUDA(cudaEventSynchronize(stop));
    float ms = 0.0f;
    BENCH_CUDA(cudaEventElapsedTime(&ms, start, stop));
    best = std::min(best, ms);
  }
  BENCH_CUDA(cudaEventDestroy(start));
  BENCH_CUDA(cudaEventDestroy(stop));
  f.copy_direct_gbs = 2.0 * bytes / (best / kReps * 1e-3) / 1e9;
  int sms = 0;
  BENCH_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  f.read_gbs = bytes /
               (TimeMs(device,
                       [&] {
                         ReadKernel<<<sms * 8, 256, 0, stream>>>(
                             static_cast<const uint4*>(a.raw_data()), bytes / 16,
                             static_cast<uint4*>(b.raw_data()));
                       }) *
                1e-3) /
               1e9;
  return f;
}

struct Batch {
  PagedAttentionParams params;
  double kv_bytes = 0, qo_bytes = 0, flops = 0;
};

// `num_seqs` sequences of `context` tokens, `q_len` query rows each, drawing blocks from a
// shuffled list of the caches' blocks.
Batch MakeBatch(Device& device, const Tensor& key_cache, const Tensor& value_cache,
                const std::vector<int32_t>& shuffled, int num_seqs, int context, int q_len) {
  Batch b;
  const int blocks_per_seq = (context + kBlockSize - 1) / kBlockSize;
  PAGEDLLM_CHECK(static_cast<size_t>(num_seqs) * blocks_per_seq <= shuffled.size(),
                 "cache too small");
  std::vector<int32_t> tables(shuffled.begin(), shuffled.begin() + num_seqs * blocks_per_seq);
  std::vector<int32_t> query_start(num_seqs + 1), context_lens(num_seqs, context);
  for (int s = 0; s <= num_seqs; ++s) query_start[s] = s * q_len;
  const int64_t tokens = static_cast<int64_t>(num_seqs) * q_len;
  PagedAttentionParams& p = b.params;
  p.query = MustAllocate(device, DType::kBFloat16, {tokens, kNumHeads, kHeadDim});
  p.output = MustAllocate(device, DType::kBFloat16, {tokens, kNumHeads, kHeadDim});
  BENCH_CUDA(cudaMemsetAsync(p.query.raw_data(), 0x3c, p.query.bytes(),
                             static_cast<cudaStream_t>(device.native_stream())));
  p.key_cache = key_cache;
  p.value_cache = value_cache;
  p.block_tables = MustUpload(device, {num_seqs, blocks_per_seq}, tables);
  p.query_start = MustUpload(device, {num_seqs + 1}, query_start);
  p.context_lens = MustUpload(device, {num_seqs}, context_lens);
  p.scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
  b.kv_bytes = 2.0 * num_seqs * context * kNumKvHeads * kHeadDim * 2;
  b.qo_bytes = 2.0 * tokens * kNumHeads * kHeadDim * 2;
  // Pairs attended: query row j of q_len sees context - q_len + j + 1 keys.
  const double pairs = static_cast<double>(q_len) * (context - q_len) + q_len * (q_len + 1) / 2.0;
  b.flops = 4.0 * kNumHeads * kHeadDim * pairs * num_seqs;
  return b;
}

int Main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  absl::StatusOr<std::unique_ptr<Device>> made = MakeCudaDevice(0);
  PAGEDLLM_CHECK_OK(made.status());
  Device& device = **made;
  cudaDeviceProp prop{};
  BENCH_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs\n\n", prop.name, prop.multiProcessorCount);

  const Floors floors = MeasureFloors(device);
  const double copy_gbs = std::max(floors.copy_graph_gbs, floors.copy_direct_gbs);
  std::printf(
      "cudaMemcpy D2D (read + write): %.0f GB/s direct, %.0f GB/s in a graph; "
      "read-only kernel: %.0f GB/s\n\n",
      floors.copy_direct_gbs, floors.copy_graph_gbs, floors.read_gbs);

  const std::vector<int> batches = {1, 8, 32, 128};
  const std::vector<int> contexts =
      quick ? std::vector<int>{512, 4096} : std::vector<int>{512, 4096, 32768};
  const int64_t max_tokens = int64_t{128} * contexts.back();
  const int64_t num_blocks = max_tokens / kBlockSize;
  Tensor key_cache =
      MustAllocate(device, DType::kBFloat16, {num_blocks, kBlockSize, kNumKvHeads, kHeadDim});
  Tensor value_cache =
      MustAllocate(device, DType::kBFloat16, {num_blocks, kBlockSize, kNumKvHeads, kHeadDim});
  cudaStream_t stream = static_cast<cudaStream_t>(device.native_stream());
  BENCH_CUDA(cudaMemsetAsync(key_cache.raw_data(), 0x3c, key_cache.bytes(), stream));
  BENCH_CUDA(cudaMemsetAsync(value_cache.raw_data(), 0x3b, value_cache.bytes(), stream));
  std::vector<int32_t> shuffled(num_blocks);
  std::iota(shuffled.begin(), shuffled.end(), 0);
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(42));

  std::printf("decode (bf16, 32 q heads / 8 kv heads, head_dim 128, block 16):\n\n");
  std::printf(
      "| batch | context | time (us) | bytes (MB) | floor at copy BW (us) | GB/s | %% of copy "
      "| %% of read |\n");
  std::printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (int context : contexts) {
    for (int batch : batches) {
      Batch b = MakeBatch(device, key_cache, value_cache, shuffled, batch, context, 1);
      const double ms = TimeMs(device, [&] { device.ops().PagedAttention(b.params); });
      const double bytes = b.kv_bytes + b.qo_bytes;
      const double gbs = bytes / (ms * 1e-3) / 1e9;
      std::printf("| %d | %d | %.1f | %.1f | %.1f | %.0f | %.0f%% | %.0f%% |\n", batch, context,
                  ms * 1e3, bytes / 1e6, bytes / (copy_gbs * 1e9) * 1e6, gbs,
                  100.0 * gbs / copy_gbs, 100.0 * gbs / floors.read_gbs);
      std::fflush(stdout);
    }
  }

  std::printf("\nprefill (bf16, whole prompts, causal):\n\n");
  std::printf(
      "| seqs x tokens | time (ms) | TFLOP/s | %% of 790 |\n| --- | ---: | ---: | ---: |\n");
  for (auto [seqs, len] : {std::pair{1, 4096}, std::pair{8, 1024}}) {
    Batch b = MakeBatch(device, key_cache, value_cache, shuffled, seqs, len, len);
    const double ms = TimeMs(device, [&] { device.ops().PagedAttention(b.params); });
    const double tflops = b.flops / (ms * 1e-3) / 1e12;
    std::printf("| %d x %d | %.3f | %.0f | %.0f%% |\n", seqs, len, ms, tflops,
                100.0 * tflops / 790.0);
    std::fflush(stdout);
  }
  // Chunked prefill: 512 new tokens over a 3584-token cached prefix, and a mixed batch.
  {
    Batch b = MakeBatch(device, key_cache, value_cache, shuffled, 4, 4096, 512);
    const double ms = TimeMs(device, [&] { device.ops().PagedAttention(b.params); });
    std::printf("| 4 x 512 over 4096 (chunked) | %.3f | %.0f | %.0f%% |\n", ms,
                b.flops / (ms * 1e-3) / 1e12, 100.0 * b.flops / (ms * 1e-3) / 1e12 / 790.0);
  }
  return 0;
}

}  // namespace
}  // namespace pagedllm::kernels

int main(int argc, char** argv) { return pagedllm::kernels::Main(argc, argv); }
