// CudaDevice: one GPU, one stream. Every copy and op is issued on that stream, in order.
//
// Memory comes from a caching allocator (freed blocks are kept, by rounded size, for reuse on the
// same stream, as PyTorch's does), so the per-step activation tensors of the forward pass cost no
// cudaMalloc after the first steps. Owns the stream, the cuBLASLt handle (through CudaOps) and
// every cached block; destroyed after every Tensor allocated from it. Used from one thread.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/device.h"

namespace pagedllm::kernels {

class CudaOps;

class CudaDevice final : public Device {
 public:
  static absl::StatusOr<std::unique_ptr<CudaDevice>> Create(int ordinal);
  ~CudaDevice() override;
  CudaDevice(const CudaDevice&) = delete;
  CudaDevice& operator=(const CudaDevice&) = delete;

  DeviceType type() const override { return DeviceType::kCuda; }
  std::string name() const override { return name_; }

  absl::StatusOr<void*> AllocateBytes(size_t bytes) override;
  void Free(void* data) override;

  // `src` may be reused or freed as soon as this returns: copies of up to 1 MiB are staged
  // through pinned buffers (asynchronous); larger ones from pageable memory synchronise the stream.
  // A larger source in pinned memory (cudaHostAlloc) is copied asynchronously: keep it unchanged
  // until Synchronize().
  void CopyHostToDevice(void* dst, const void* src, size_t bytes) override;
  // Asynchronous on the stream; call Synchronize() before reading `dst`.
  void CopyDeviceToHost(void* dst, const void* src, size_t bytes) override;
  void CopyDeviceToDevice(void* dst, const void* src, size_t bytes) override;
  // cudaHostAlloc / cudaFreeHost (the latter synchronises the device).
  absl::StatusOr<void*> AllocatePinnedHost(size_t bytes) override;
  void FreePinnedHost(void* data) override;
  // cudaMemcpyAsync on the stream, straight from `src` (no staging).
  void CopyPinnedHostToDevice(void* dst, const void* src, size_t bytes) override;
  void Synchronize() override;
  // cudaEvent marks (with timing), recorded on the stream.
  absl::StatusOr<std::unique_ptr<DeviceMark>> Mark() override;
  absl::StatusOr<int64_t> NanosBetween(const DeviceMark& from, const DeviceMark& to) override;
  absl::StatusOr<bool> Reached(const DeviceMark& mark) override;
  absl::Status WaitFor(const DeviceMark& mark) override;

  Ops& ops() override;
  void* native_stream() const override { return stream_; }
  cudaStream_t stream() const { return stream_; }
  int ordinal() const { return ordinal_; }

  // Bytes handed out to live tensors (each counted at its rounded block size: 512 B granules up to
  // 1 MiB, 2 MiB granules above), and bytes held from CUDA (live + cached).
  size_t bytes_in_use() const { return bytes_in_use_; }
  size_t bytes_reserved() const { return bytes_reserved_; }
  size_t peak_bytes_in_use() const { return peak_bytes_in_use_; }
  void ResetPeak() { peak_bytes_in_use_ = bytes_in_use_; }
  absl::StatusOr<MemoryStats> memory_stats() const override {
    absl::StatusOr<std::pair<size_t, size_t>> info = MemoryInfo();
    if (!info.ok()) return info.status();
    MemoryStats stats;
    stats.free = info->first;
    stats.total = info->second;
    stats.in_use = bytes_in_use_;
    stats.peak_in_use = peak_bytes_in_use_;
    return stats;
  }
  void ResetPeakMemory() override { ResetPeak(); }

  // Stream capture (relaxed mode) of `body` into a CUDA graph (cuda_graph.cc).
  //
  // Graph memory is one pool shared by every graph: blocks allocated while capturing join it for
  // good (replays write them), and a pool block that no live tensor holds may be taken again by
  // the same capture (in stream order, as eager work reuses memory) or by a later one. Graphs
  // replay one at a time on the one stream, so each uses the pool as scratch in turn; only what
  // a capture leaves live (its outputs) stays its own. Eager allocations never take pool blocks.
  // So the graphs of every batch size together hold about the largest one's activations.
  absl::StatusOr<std::unique_ptr<DeviceGraph>> CaptureGraph(
      std::function<absl::Status()> body) override;
  // Returns every cached (unused) block to CUDA.
  void EmptyCache();
  // cudaMemGetInfo: {free, total} bytes of the GPU.
  absl::StatusOr<std::pair<size_t, size_t>> MemoryInfo() const;

 private:
  CudaDevice(int ordinal, cudaStream_t stream, std::string name);

  // A pinned host buffer and the event recorded after the copy that last read it.
  struct StagingSlot {
    void* host = nullptr;
    cudaEvent_t done = nullptr;
  };
  absl::Status CreateStaging();
  // A block of exactly `rounded` bytes or more from the cache, else from cudaMalloc.
  absl::StatusOr<void*> TakeBlock(size_t bytes, size_t rounded);

  const int ordinal_;
  cudaStream_t stream_;
  const std::string name_;
  std::unique_ptr<CudaOps> ops_;
  std::multimap<size_t, void*> cached_;  // free blocks by size
  bool capturing_ = false;
  std::multimap<size_t, void*> graph_free_;  // graph pool blocks no live tensor holds
  std::unordered_set<void*> graph_pool_;     // every graph pool block
  size_t graph_pool_bytes_ = 0;
  std::unordered_map<void*, size_t> block_size_;  // every block we hold, by address
  size_t bytes_in_use_ = 0;
  size_t bytes_reserved_ = 0;
  size_t peak_bytes_in_use_ = 0;
  std::vector<StagingSlot> staging_;
  size_t next_staging_ = 0;
};

}  // namespace pagedllm::kernels
