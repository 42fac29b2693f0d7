// Tensor: a dense, row-major, contiguous n-d array on one device.
//
// A Tensor shares ownership of its Buffer (views made by Slice/Reshape keep the buffer alive),
// so copying a Tensor copies the handle, never the data. A default-constructed Tensor is empty.
// Not thread safe beyond what the underlying memory is: callers order their accesses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace pagedllm::kernels {

enum class DType : int8_t { kFloat32, kBFloat16, kFloat16, kInt32 };
enum class DeviceType : int8_t { kCpu, kCuda };

size_t DTypeSize(DType dtype);
const char* DTypeName(DType dtype);
absl::StatusOr<DType> DTypeFromName(const std::string& name);  // "float32", "bfloat16", ...

class Device;

// A block of device memory. Owns it; move-only; frees through the device that made it.
class Buffer {
 public:
  Buffer(Device* device, void* data, size_t bytes) : device_(device), data_(data), bytes_(bytes) {}
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device* device() const { return device_; }

 private:
  Device* device_;
  void* data_;
  size_t bytes_;
};

class Tensor {
 public:
  Tensor() = default;
  Tensor(std::shared_ptr<Buffer> buffer, size_t byte_offset, DType dtype,
         std::vector<int64_t> shape);

  bool empty() const { return buffer_ == nullptr; }
  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_[i < 0 ? shape_.size() + i : i]; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const;
  size_t bytes() const { return static_cast<size_t>(numel()) * DTypeSize(dtype_); }
  Device* device() const { return buffer_ ? buffer_->device() : nullptr; }
  DeviceType device_type() const;

  void* raw_data() const { return static_cast<char*>(buffer_->data()) + byte_offset_; }
  template <typename T>
  T* data() const { return static_cast<T*>(raw_data()); }

  // Rows [begin, end) along dimension 0, sharing the buffer.
  Tensor Slice(int64_t begin, int64_t end) const;
  // Same data, another shape with the same number of elements.
  Tensor Reshape(std::vector<int64_t> shape) const;

  std::string ShapeString() const;  // "[2, 3, 4] float32"

 private:
  std::shared_ptr<Buffer> buffer_;
  size_t byte_offset_ = 0;
  DType dtype_ = DType::kFloat32;
  std::vector<int64_t> shape_;
};

}  // namespace pagedllm::kernels
