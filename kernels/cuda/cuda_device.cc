// CudaDevice: the GPU, its stream, the caching allocator and host/device copies; and
// MakeCudaDevice (kernels/device.h).
#include "kernels/cuda/cuda_device.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/logging.h"
#include "common/status.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"

namespace pagedllm::kernels {
namespace {

// Allocation granules: small requests round up to 512 B, larger ones to 2 MiB, so the sizes a
// forward pass asks for fall into few buckets and freed blocks are reused.
constexpr size_t kSmallGranule = 512;
constexpr size_t kSmallLimit = size_t{1} << 20;
constexpr size_t kLargeGranule = size_t{2} << 20;
// A cached block serves a request at most this much bigger than the rounded size (1/4 more).
constexpr size_t kReuseSlackDivisor = 4;

// Host-to-device staging: this many pinned buffers of this size, used round robin.
constexpr int kStagingSlots = 4;
constexpr size_t kStagingSlotBytes = size_t{1} << 20;

size_t RoundedSize(size_t bytes) {
  if (bytes <= kSmallLimit) {
    return bytes == 0 ? kSmallGranule : (bytes + kSmallGranule - 1) / kSmallGranule * kSmallGranule;
  }
  return (bytes + kLargeGranule - 1) / kLargeGranule * kLargeGranule;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CudaDevice>> CudaDevice::Create(int ordinal) {
  int count = 0;
  PAGEDLLM_CUDA_RETURN_IF_ERROR(cudaGetDeviceCount(&count));
  if (ordinal < 0 || ordinal >= count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CUDA device ordinal ", ordinal, " is out of range: this machine has ", count, " GPU(s)"));
  }
  PAGEDLLM_CUDA_RETURN_IF_ERROR(cudaSetDevice(ordinal));
  cudaDeviceProp properties;
  PAGEDLLM_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&properties, ordinal));
  cudaStream_t stream = nullptr;
  PAGEDLLM_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::unique_ptr<CudaDevice> device(
      new CudaDevice(ordinal, stream, absl::StrCat("cuda:", ordinal, " (", properties.name, ")")));
  PAGEDLLM_RETURN_IF_ERROR(device->CreateStaging());
  device->ops_ = std::make_unique<CudaOps>(device.get());
  return device;
}

CudaDevice::CudaDevice(int ordinal, cudaStream_t stream, std::string name)
    : ordinal_(ordinal), stream_(stream), name_(std::move(name)) {}

absl::Status CudaDevice::CreateStaging() {
  for (int i = 0; i < kStagingSlots; ++i) {
    StagingSlot slot;
    PAGEDLLM_CUDA_RETURN_IF_ERROR(
        cudaHostAlloc(&slot.host, kStagingSlotBytes, cudaHostAllocDefault));
    staging_.push_back(slot);  // pushed first, so the destructor frees it if the next call fails
    PAGEDLLM_CUDA_RETURN_IF_ERROR(
        cudaEventCreateWithFlags(&staging_.back().done, cudaEventDisableTiming));
  }
  return absl::OkStatus();
}

CudaDevice::~CudaDevice() {
  // Errors are not actionable at this point: release what can be released.
  cudaStreamSynchronize(stream_);
  ops_.reset();
  if (bytes_in_use_ > 0) {
    PAGEDLLM_LOG(WARNING) << name_ << ": destroyed with " << bytes_in_use_
                          << " bytes still held by tensors";
  }
  for (const auto& [data, size] : block_size_) cudaFree(data);
  for (const StagingSlot& slot : staging_) {
    if (slot.done != nullptr) cudaEventDestroy(slot.done);
    if (slot.host != nullptr) cudaFreeHost(slot.host);
  }
  cudaStreamDestroy(stream_);
}

absl::StatusOr<void*> CudaDevice::AllocateBytes(size_t bytes) {
  if (bytes > std::numeric_limits<size_t>::max() - kLargeGranule) {
    return absl::ResourceExhaustedError(absl::StrCat(name_, ": cannot allocate ", bytes, " bytes"));
  }
  const size_t rounded = RoundedSize(bytes);
  PAGEDLLM_ASSIGN_OR_RETURN(void* data, TakeBlock(bytes, rounded));
  bytes_in_use_ += block_size_.at(data);
  if (bytes_in_use_ > peak_bytes_in_use_) peak_bytes_in_use_ = bytes_in_use_;
  return data;
}

absl::StatusOr<void*> CudaDevice::TakeBlock(size_t bytes, size_t rounded) {
  std::multimap<size_t, void*>& free_blocks = capturing_ ? graph_free_ : cached_;
  if (auto it = free_blocks.lower_bound(rounded);
      it != free_blocks.end() && it->first <= rounded + rounded / kReuseSlackDivisor) {
    void* data = it->second;
    free_blocks.erase(it);
    return data;
  }
  void* data = nullptr;
  cudaError_t error = cudaMalloc(&data, rounded);
  if (error == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // cudaMalloc's failure is not sticky; clear it for the launch checks
    if (capturing_) {
      // Emptying the cache synchronises the stream, which a capture forbids: fail instead, and
      // let the caller run the step without a graph.
      return absl::ResourceExhaustedError(absl::StrCat(
          name_, ": out of memory allocating ", bytes, " bytes while capturing a graph (",
          graph_pool_bytes_, " bytes in the graph pool)"));
    }
    const size_t cached_bytes = bytes_reserved_ - bytes_in_use_;
    EmptyCache();
    error = cudaMalloc(&data, rounded);
    if (error == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t free = 0, total = 0;
      cudaMemGetInfo(&free, &total);
      return absl::ResourceExhaustedError(
          absl::StrCat(name_, ": out of memory allocating ", bytes, " bytes (", rounded,
                       " rounded): ", bytes_in_use_, " bytes in use by tensors, ", cached_bytes,
                       " cached bytes were returned to CUDA before retrying, ", free, " of ", total,
                       " bytes free on the GPU"));
    }
  }
  PAGEDLLM_CUDA_RETURN_IF_ERROR(error);
  block_size_.emplace(data, rounded);
  bytes_reserved_ += rounded;
  if (capturing_) {
    graph_pool_.insert(data);
    graph_pool_bytes_ += rounded;
  }
  return data;
}

void CudaDevice::Free(void* data) {
  if (data == nullptr) return;
  const auto it = block_size_.find(data);
  PAGEDLLM_CHECK(it != block_size_.end(), name_, ": Free(0x",
                 absl::Hex(reinterpret_cast<uintptr_t>(data)),
                 ") of a pointer this device did not allocate (or freed twice)");
  bytes_in_use_ -= it->second;
  // Kernels still queued on the stream (or recorded in a graph) may use the block; whoever takes
  // it next issues its work on the same stream, after them, so it is free again at once. A graph
  // pool block stays in the pool.
  const bool pooled = !graph_pool_.empty() && graph_pool_.count(data) > 0;
  (pooled ? graph_free_ : cached_).emplace(it->second, data);
}

void CudaDevice::EmptyCache() {
  if (cached_.empty()) return;
  PAGEDLLM_CUDA_CHECK(cudaStreamSynchronize(stream_));  // queued kernels may still use them
  for (const auto& [size, data] : cached_) {
    PAGEDLLM_CUDA_CHECK(cudaFree(data));
    block_size_.erase(data);
    bytes_reserved_ -= size;
  }
  cached_.clear();
}

absl::StatusOr<std::pair<size_t, size_t>> CudaDevice::MemoryInfo() const {
  size_t free = 0, total = 0;
  PAGEDLLM_CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&free, &total));
  return std::make_pair(free, total);
}

void CudaDevice::CopyHostToDevice(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  if (bytes <= kStagingSlotBytes) {
    // Copy into the next pinned slot once the copy that last read it has run, then DMA from it:
    // the caller's buffer is free to go on return and the stream is not drained.
    StagingSlot& slot = staging_[next_staging_];
    next_staging_ = (next_staging_ + 1) % staging_.size();
    PAGEDLLM_CUDA_CHECK(cudaEventSynchronize(slot.done));
    std::memcpy(slot.host, src, bytes);
    PAGEDLLM_CUDA_CHECK(cudaMemcpyAsync(dst, slot.host, bytes, cudaMemcpyHostToDevice, stream_));
    PAGEDLLM_CUDA_CHECK(cudaEventRecord(slot.done, stream_));
    return;
  }
  cudaPointerAttributes attributes;
  PAGEDLLM_CUDA_CHECK(cudaPointerGetAttributes(&attributes, src));
  PAGEDLLM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
  // From pageable memory the driver may still read `src` after returning: wait for the copy.
  if (attributes.type != cudaMemoryTypeHost) PAGEDLLM_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaDevice::CopyDeviceToHost(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  PAGEDLLM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
}

void CudaDevice::CopyDeviceToDevice(void* dst, const void* src, size_t bytes) {
  if (bytes == 0 || dst == src) return;
  PAGEDLLM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
}

absl::StatusOr<void*> CudaDevice::AllocatePinnedHost(size_t bytes) {
  void* data = nullptr;
  const cudaError_t error = cudaHostAlloc(&data, std::max<size_t>(bytes, 1), cudaHostAllocDefault);
  if (error != cudaSuccess) {
    cudaGetLastError();  // a failed allocation is not sticky: clear it so later checks pass
    return absl::ResourceExhaustedError(
        absl::StrCat("cudaHostAlloc of ", bytes,
                     " bytes of pinned host memory failed: ", cudaGetErrorString(error)));
  }
  return data;
}

void CudaDevice::FreePinnedHost(void* data) {
  if (data != nullptr) PAGEDLLM_CUDA_CHECK(cudaFreeHost(data));
}

void CudaDevice::CopyPinnedHostToDevice(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  PAGEDLLM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
}

void CudaDevice::Synchronize() { PAGEDLLM_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

namespace {

class EventMark final : public DeviceMark {
 public:
  ~EventMark() override {
    if (event != nullptr) cudaEventDestroy(event);
  }
  cudaEvent_t event = nullptr;
};

absl::StatusOr<cudaEvent_t> EventOf(const DeviceMark& mark, const std::string& device_name) {
  const auto* event_mark = dynamic_cast<const EventMark*>(&mark);
  if (event_mark == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("a mark not made by ", device_name, "'s Mark()"));
  }
  return event_mark->event;
}

}  // namespace

absl::StatusOr<std::unique_ptr<DeviceMark>> CudaDevice::Mark() {
  auto mark = std::make_unique<EventMark>();
  PAGEDLLM_CUDA_RETURN_IF_ERROR(cudaEventCreate(&mark->event));
  PAGEDLLM_CUDA_RETURN_IF_ERROR(cudaEventRecord(mark->event, stream_));
  return mark;
}

absl::StatusOr<int64_t> CudaDevice::NanosBetween(const DeviceMark& from, const DeviceMark& to) {
  PAGEDLLM_ASSIGN_OR_RETURN(cudaEvent_t first, EventOf(from, name_));
  PAGEDLLM_ASSIGN_OR_RETURN(cudaEvent_t second, EventOf(to, name_));
  float ms = 0.0f;
  PAGEDLLM_CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms, first, second));
  return static_cast<int64_t>(static_cast<double>(ms) * 1e6);
}

absl::StatusOr<bool> CudaDevice::Reached(const DeviceMark& mark) {
  PAGEDLLM_ASSIGN_OR_RETURN(cudaEvent_t event, EventOf(mark, name_));
  const cudaError_t status = cudaEventQuery(event);
  if (status == cudaErrorNotReady) {
    // Not an error, but the runtime keeps it as the thread's last error, where the next op's
    // launch check would take it for a failure.
    cudaGetLastError();
    return false;
  }
  PAGEDLLM_CUDA_RETURN_IF_ERROR(status);
  return true;
}

absl::Status CudaDevice::WaitFor(const DeviceMark& mark) {
  PAGEDLLM_ASSIGN_OR_RETURN(cudaEvent_t event, EventOf(mark, name_));
  PAGEDLLM_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(event));
  return absl::OkStatus();
}

Ops& CudaDevice::ops() { return *ops_; }

absl::StatusOr<std::unique_ptr<Device>> MakeCudaDevice(int ordinal) {
  PAGEDLLM_ASSIGN_OR_RETURN(std::unique_ptr<CudaDevice> device, CudaDevice::Create(ordinal));
  return std::unique_ptr<Device>(std::move(device));
}

}  // namespace pagedllm::kernels
