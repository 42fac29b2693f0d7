#include "kernels/tensor.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/check.h"
#include "kernels/device.h"

namespace pagedllm::kernels {

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return 4;
    case DType::kBFloat16:
      return 2;
    case DType::kFloat16:
      return 2;
    case DType::kInt32:
      return 4;
  }
  PAGEDLLM_CHECK(false, "unknown DType ", static_cast<int>(dtype));
}

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "float32";
    case DType::kBFloat16:
      return "bfloat16";
    case DType::kFloat16:
      return "float16";
    case DType::kInt32:
      return "int32";
  }
  PAGEDLLM_CHECK(false, "unknown DType ", static_cast<int>(dtype));
}

absl::StatusOr<DType> DTypeFromName(const std::string& name) {
  // Canonical names first (Hugging Face's config.json "torch_dtype" uses them), then aliases.
  if (name == "float32" || name == "fp32" || name == "float") return DType::kFloat32;
  if (name == "bfloat16" || name == "bf16") return DType::kBFloat16;
  if (name == "float16" || name == "fp16" || name == "half") return DType::kFloat16;
  if (name == "int32") return DType::kInt32;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype \"", name, "\"; expected float32, bfloat16, float16 or int32"));
}

Buffer::~Buffer() {
  if (data_ != nullptr) device_->Free(data_);
}

Tensor::Tensor(std::shared_ptr<Buffer> buffer, size_t byte_offset, DType dtype,
               std::vector<int64_t> shape)
    : buffer_(std::move(buffer)),
      byte_offset_(byte_offset),
      dtype_(dtype),
      shape_(std::move(shape)) {
  PAGEDLLM_CHECK(buffer_ != nullptr, "Tensor needs a buffer");
  for (int64_t d : shape_) {
    PAGEDLLM_CHECK(d >= 0, "negative dimension in shape [", absl::StrJoin(shape_, ", "), "]");
  }
  PAGEDLLM_CHECK(byte_offset_ + bytes() <= buffer_->bytes(), "tensor ", ShapeString(),
                 " at byte offset ", byte_offset_, " does not fit its buffer of ", buffer_->bytes(),
                 " bytes");
}

int64_t Tensor::numel() const {
  if (empty()) return 0;
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

DeviceType Tensor::device_type() const {
  PAGEDLLM_CHECK(!empty(), "device_type() of an empty tensor");
  return buffer_->device()->type();
}

Tensor Tensor::Slice(int64_t begin, int64_t end) const {
  PAGEDLLM_CHECK(!empty() && rank() >= 1, "Slice needs a tensor of rank >= 1, got ", ShapeString());
  PAGEDLLM_CHECK(0 <= begin && begin <= end && end <= shape_[0], "Slice [", begin, ", ", end,
                 ") out of range for ", ShapeString());
  std::vector<int64_t> shape = shape_;
  shape[0] = end - begin;
  const int64_t row_elements = shape_[0] == 0 ? 0 : numel() / shape_[0];
  const size_t offset =
      byte_offset_ + static_cast<size_t>(begin * row_elements) * DTypeSize(dtype_);
  return Tensor(buffer_, offset, dtype_, std::move(shape));
}

Tensor Tensor::Reshape(std::vector<int64_t> shape) const {
  PAGEDLLM_CHECK(!empty(), "Reshape of an empty tensor");
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  PAGEDLLM_CHECK(n == numel(), "Reshape of ", ShapeString(), " to [", absl::StrJoin(shape, ", "),
                 "] changes the number of elements (", numel(), " vs ", n, ")");
  return Tensor(buffer_, byte_offset_, dtype_, std::move(shape));
}

std::string Tensor::ShapeString() const {
  if (empty()) return "[] (empty)";
  return absl::StrCat("[", absl::StrJoin(shape_, ", "), "] ", DTypeName(dtype_));
}

}  // namespace pagedllm::kernels
