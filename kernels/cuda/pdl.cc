#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>

namespace pagedllm::kernels::cuda {

bool PdlEnabled() {
  static const bool enabled = [] {
    const char* setting = std::getenv("PAGEDLLM_CUDA_PDL");
    if (setting != nullptr && std::strcmp(setting, "0") == 0) return false;
    int device = 0, major = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
      return false;
    }
    return major >= 9;
  }();
  return enabled;
}

}  // namespace pagedllm::kernels::cuda
