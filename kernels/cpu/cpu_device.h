// CpuDevice: host memory (64-byte aligned), memcpy copies, and the float32 CpuOps.
//
// Owns its CpuOps and the ThreadPool they run on. Work is synchronous, so Synchronize() has
// nothing to wait for. Used from one thread, like every Device.
#pragma once

#include <memory>
#include <string>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/device.h"

namespace pagedllm::kernels::cpu {

class CpuDevice : public Device {
 public:
  static constexpr size_t kAlignment = 64;

  // `num_threads` for the kernels' parallel loops (the calling thread included).
  explicit CpuDevice(int num_threads);

  DeviceType type() const override { return DeviceType::kCpu; }
  std::string name() const override { return "cpu"; }

  absl::StatusOr<void*> AllocateBytes(size_t bytes) override;
  void Free(void* data) override;

  void CopyHostToDevice(void* dst, const void* src, size_t bytes) override;
  void CopyDeviceToHost(void* dst, const void* src, size_t bytes) override;
  void CopyDeviceToDevice(void* dst, const void* src, size_t bytes) override;
  void Synchronize() override {}

  Ops& ops() override { return ops_; }

 private:
  ThreadPool pool_;
  CpuOps ops_;
};

// Threads for MakeCpuDevice(): $PAGEDLLM_CPU_THREADS when set to a positive integer, else the
// number of hardware threads. When the variable is set, MakeCpuDevice also gives OpenBLAS
// (process-wide) that many threads; otherwise OpenBLAS follows $OPENBLAS_NUM_THREADS.
int DefaultCpuThreads();

}  // namespace pagedllm::kernels::cpu
