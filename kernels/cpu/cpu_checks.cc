#include "kernels/cpu/cpu_checks.h"

#include "absl/strings/str_cat.h"
#include "kernels/device.h"

namespace pagedllm::kernels::cpu {

std::string DescribeTensors(std::initializer_list<std::pair<const char*, const Tensor*>> tensors) {
  std::string text;
  for (const auto& [name, tensor] : tensors) {
    absl::StrAppend(&text, text.empty() ? "" : ", ", name, " ", tensor->ShapeString());
  }
  return text;
}

void CheckOnDevice(const char* op, const char* name, const Tensor& tensor, const Device* device) {
  PAGEDLLM_CHECK(!tensor.empty(), op, ": ", name, " is an empty tensor");
  PAGEDLLM_CHECK(tensor.device() == device, op, ": ", name, " ", tensor.ShapeString(),
                 " lives on a ", tensor.device()->name(), " device other than the ops' own ",
                 device->name(), " device (allocate it from the device whose ops() you call)");
}

void CheckTensor(const char* op, const char* name, const Tensor& tensor, const Device* device,
                 DType dtype) {
  CheckOnDevice(op, name, tensor, device);
  PAGEDLLM_CHECK(tensor.dtype() == dtype, op, ": ", name, " must be ", DTypeName(dtype), ", got ",
                 tensor.ShapeString());
}

void CheckRank(const char* op, const char* name, const Tensor& tensor, int rank) {
  PAGEDLLM_CHECK(tensor.rank() == rank, op, ": ", name, " must have rank ", rank, ", got ",
                 tensor.ShapeString());
}

}  // namespace pagedllm::kernels::cpu
