// PinnedBuffer: page-locked host memory that grows on demand (Device::AllocatePinnedHost), for a
// step's uploads and read-backs: copies from and to it are queued on the device's stream without
// waiting. Keep it unchanged (and alive) until the copies that use it have run.
#pragma once

#include <cstddef>

#include "absl/status/status.h"
#include "kernels/device.h"

namespace pagedllm::worker {

class PinnedBuffer {
 public:
  explicit PinnedBuffer(kernels::Device* device) : device_(device) {}
  ~PinnedBuffer();
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  // At least `bytes` of room; the contents are lost when it grows (no copy may be pending then).
  absl::Status Reserve(size_t bytes);
  char* data() const { return data_; }
  size_t capacity() const { return capacity_; }

 private:
  kernels::Device* device_;
  char* data_ = nullptr;
  size_t capacity_ = 0;
};

}  // namespace pagedllm::worker
