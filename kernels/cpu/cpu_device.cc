#include "kernels/cpu/cpu_device.h"

#include <cblas.h>

#include <cstdlib>
#include <cstring>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace pagedllm::kernels::cpu {

CpuDevice::CpuDevice(int num_threads) : pool_(num_threads), ops_(this, &pool_) {}

absl::StatusOr<void*> CpuDevice::AllocateBytes(size_t bytes) {
  // aligned_alloc wants a multiple of the alignment; a zero-byte tensor still gets a pointer.
  const size_t rounded =
      bytes == 0 ? kAlignment : (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded < bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("cpu: cannot allocate ", bytes, " bytes"));
  }
  void* data = std::aligned_alloc(kAlignment, rounded);
  if (data == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cpu: out of host memory allocating ", bytes, " bytes"));
  }
  return data;
}

void CpuDevice::Free(void* data) { std::free(data); }

void CpuDevice::CopyHostToDevice(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
}

void CpuDevice::CopyDeviceToHost(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
}

void CpuDevice::CopyDeviceToDevice(void* dst, const void* src, size_t bytes) {
  if (bytes > 0 && dst != src) std::memmove(dst, src, bytes);
}

int DefaultCpuThreads() {
  if (const char* env = std::getenv("PAGEDLLM_CPU_THREADS"); env != nullptr && *env != '\0') {
    int threads = 0;
    if (absl::SimpleAtoi(env, &threads) && threads > 0) return threads;
    PAGEDLLM_LOG(WARNING) << "ignoring PAGEDLLM_CPU_THREADS=\"" << env
                          << "\": expected a positive integer";
  }
  const unsigned hardware = std::thread::hardware_concurrency();
  return hardware == 0 ? 1 : static_cast<int>(hardware);
}

}  // namespace pagedllm::kernels::cpu

namespace pagedllm::kernels {

std::unique_ptr<Device> MakeCpuDevice() {
  const int threads = cpu::DefaultCpuThreads();
  // An explicit thread budget covers OpenBLAS's GEMM threads too (e.g. 1 per rank when
  // several ranks share a few cores); otherwise OpenBLAS keeps its own default.
  if (std::getenv("PAGEDLLM_CPU_THREADS") != nullptr) openblas_set_num_threads(threads);
  return std::make_unique<cpu::CpuDevice>(threads);
}

}  // namespace pagedllm::kernels
