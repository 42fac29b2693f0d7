// Programmatic dependent launch (PDL, sm_90+): a kernel launched with LaunchKernel may start
// while the kernel before it on the stream is still finishing, so its launch and the set-up of
// its blocks hide behind that kernel's last wave instead of following it. At one token per step
// a decode step is ~350 small dependent kernels, and those gaps add up to a large share of it.
//
// The contract for a kernel launched this way: call PdlWait() before touching global memory that
// an earlier kernel writes or reads (inputs, outputs, scratch: the caching allocator hands freed
// memory to the next op in stream order); only memory nobody writes during the step (weights)
// may be read before it. PdlWait returns once the previous grid has completed and its writes are
// visible; since that grid waited for its own predecessor, ordering holds transitively. Then call
// PdlLaunchDependents() so the next kernel may launch. Both are no-ops when the kernel was
// launched without PDL (PAGEDLLM_CUDA_PDL=0, or an older GPU).
// Include only from .cu files.
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "kernels/cuda/cuda_check.h"

namespace pagedllm::kernels::cuda {

__device__ __forceinline__ void PdlWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void PdlLaunchDependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Whether kernels are launched with PDL: on compute capability 9.0+ unless PAGEDLLM_CUDA_PDL=0.
bool PdlEnabled();

// kernel<<<grid, block, shared_bytes, stream>>>(args...), with PDL when enabled. The kernel must
// follow the contract above. Aborts naming the error when the launch fails.
template <typename... Params, typename... Args>
void LaunchKernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
                  cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attribute;
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = PdlEnabled() ? 1 : 0;
  PAGEDLLM_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

}  // namespace pagedllm::kernels::cuda
