// MakeCudaDevice. The CUDA backend replaces this file's body; the CPU device comes from
// kernels/cpu/cpu_device.cc.
#include "kernels/device.h"

namespace pagedllm::kernels {

#ifndef PAGEDLLM_WITH_CUDA
absl::StatusOr<std::unique_ptr<Device>> MakeCudaDevice(int ordinal) {
  return absl::UnimplementedError("pagedllm was built without CUDA (PAGEDLLM_CUDA=OFF or no nvcc)");
}
#endif

}  // namespace pagedllm::kernels
