// Device: allocation, copies and synchronisation for one backend (CPU or one CUDA GPU).
//
// A Device outlives every Tensor allocated from it. Copies and ops are issued in order on the
// device's single stream; Synchronize() waits for all of them. Used from one thread.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/tensor.h"

namespace pagedllm::kernels {

class Ops;

// A recorded sequence of device work that can be run again (a CUDA graph). Replaying runs the
// same kernels on the same memory: inputs change by writing into the tensors the body read.
class DeviceGraph {
 public:
  virtual ~DeviceGraph() = default;
  virtual absl::Status Replay() = 0;
};

// A point the device's stream reached, stamped by the device's own clock (Device::Mark).
class DeviceMark {
 public:
  virtual ~DeviceMark() = default;
};

// Memory of a device as its allocator sees it (bytes).
struct MemoryStats {
  size_t total = 0;        // the device's memory
  size_t free = 0;         // free on the device (other processes' use counts as not free)
  size_t in_use = 0;       // held by live tensors
  size_t peak_in_use = 0;  // highest in_use since the last ResetPeakMemory()
};

class Device {
 public:
  virtual ~Device() = default;

  virtual DeviceType type() const = 0;
  virtual std::string name() const = 0;

  // Raw memory; Buffer's destructor calls Free.
  virtual absl::StatusOr<void*> AllocateBytes(size_t bytes) = 0;
  virtual void Free(void* data) = 0;

  virtual void CopyHostToDevice(void* dst, const void* src, size_t bytes) = 0;
  virtual void CopyDeviceToHost(void* dst, const void* src, size_t bytes) = 0;
  virtual void CopyDeviceToDevice(void* dst, const void* src, size_t bytes) = 0;
  virtual void Synchronize() = 0;

  // Page-locked host memory for the KV swap space: on CUDA (cudaHostAlloc) the copy engines
  // move blocks between it and the GPU without staging, asynchronously on the stream. On the
  // CPU it is ordinary memory. Free it with FreePinnedHost.
  virtual absl::StatusOr<void*> AllocatePinnedHost(size_t bytes);
  virtual void FreePinnedHost(void* data);
  // Copies from pinned host memory (AllocatePinnedHost) to the device, in stream order, without
  // waiting: keep `src` unchanged until Synchronize(). CopyDeviceToHost is already stream-ordered.
  virtual void CopyPinnedHostToDevice(void* dst, const void* src, size_t bytes) {
    CopyHostToDevice(dst, src, bytes);
  }

  virtual Ops& ops() = 0;

  // The backend's stream (cudaStream_t on CUDA, as void*); nullptr on the CPU. For
  // communicators that must order collectives with the device's work.
  virtual void* native_stream() const { return nullptr; }

  // UNIMPLEMENTED where the backend does not track memory (the CPU).
  virtual absl::StatusOr<MemoryStats> memory_stats() const {
    return absl::UnimplementedError(name() + " does not report memory statistics");
  }
  virtual void ResetPeakMemory() {}

  // Records `body`'s device work into a graph. On CUDA the body runs once, under stream capture
  // (its kernels do not execute then); memory it allocates and frees stays reserved for the
  // graph while the graph lives. The default (CPU) implementation records nothing: Replay() runs
  // the body again, so the same code path is exercised without a GPU.
  virtual absl::StatusOr<std::unique_ptr<DeviceGraph>> CaptureGraph(
      std::function<absl::Status()> body);

  // Timelines: Mark() records the point the stream has reached, without waiting; once two marks
  // are reached (after Synchronize()) NanosBetween gives the device time from one to the other.
  // On CUDA a mark is an event with timing; the default (CPU, whose work is synchronous) stamps
  // the host clock when Mark() is called.
  virtual absl::StatusOr<std::unique_ptr<DeviceMark>> Mark();
  virtual absl::StatusOr<int64_t> NanosBetween(const DeviceMark& from, const DeviceMark& to);
  // Whether the stream has reached `mark` (all work before it done), without waiting; WaitFor
  // waits until it has. On the CPU, whose work is synchronous, every mark is reached when made.
  virtual absl::StatusOr<bool> Reached(const DeviceMark& mark);
  virtual absl::Status WaitFor(const DeviceMark& mark);

  // A new tensor; contents undefined. Fails (RESOURCE_EXHAUSTED) when memory runs out.
  absl::StatusOr<Tensor> Allocate(DType dtype, std::vector<int64_t> shape);
  // A new tensor holding a copy of host data.
  template <typename T>
  absl::StatusOr<Tensor> FromHost(DType dtype, std::vector<int64_t> shape,
                                  const std::vector<T>& values);
  // Copies a whole tensor to a host vector (synchronises).
  template <typename T>
  std::vector<T> ToHost(const Tensor& tensor);
};

// The CPU device (fp32 compute, OpenBLAS). Defined in kernels/cpu.
std::unique_ptr<Device> MakeCpuDevice();
// The CUDA device for GPU `ordinal`; UNIMPLEMENTED when built without CUDA.
absl::StatusOr<std::unique_ptr<Device>> MakeCudaDevice(int ordinal);

template <typename T>
absl::StatusOr<Tensor> Device::FromHost(DType dtype, std::vector<int64_t> shape,
                                        const std::vector<T>& values) {
  absl::StatusOr<Tensor> tensor = Allocate(dtype, std::move(shape));
  if (!tensor.ok()) return tensor;
  if (tensor->bytes() != values.size() * sizeof(T)) {
    return absl::InvalidArgumentError("FromHost: " + std::to_string(values.size()) +
                                      " values do not fill " + tensor->ShapeString());
  }
  CopyHostToDevice(tensor->raw_data(), values.data(), tensor->bytes());
  return tensor;
}

template <typename T>
std::vector<T> Device::ToHost(const Tensor& tensor) {
  std::vector<T> values(tensor.bytes() / sizeof(T));
  CopyDeviceToHost(values.data(), tensor.raw_data(), tensor.bytes());
  Synchronize();
  return values;
}

}  // namespace pagedllm::kernels
