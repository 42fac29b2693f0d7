// CudaOps: the CUDA implementation of kernels/ops.h for bfloat16, float16 and float32 (float32
// exists for exact comparisons with the CPU backend; serving uses bf16/fp16). Reductions and
// softmax accumulate in float32. Kernels are issued on the device's stream and never synchronise.
// Owns the cuBLASLt handle and a workspace that grows on demand (never during graph capture:
// warm up first). Used from the device's thread.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <memory>
#include <utility>
#include <vector>

#include "kernels/ops.h"

namespace pagedllm::kernels {

class CudaDevice;
namespace cuda {
class LinearPlans;  // cuda_linear.h: cuBLASLt descriptors and algorithms per GEMM shape
}  // namespace cuda

class CudaOps final : public Ops {
 public:
  explicit CudaOps(CudaDevice* device);
  ~CudaOps() override;
  CudaOps(const CudaOps&) = delete;
  CudaOps& operator=(const CudaOps&) = delete;

  void Linear(const Tensor& x, const Tensor& weight, const Tensor& y) override;
  void Embedding(const Tensor& token_ids, const Tensor& table, int64_t vocab_begin,
                 const Tensor& out) override;
  void RmsNorm(const Tensor& x, const Tensor& weight, float eps, const Tensor& out) override;
  void AddRmsNorm(const Tensor& x, const Tensor& residual, const Tensor& weight, float eps,
                  const Tensor& out) override;
  void RopeQkv(const RopeQkvParams& params) override;
  void SiluAndMul(const Tensor& gate_up, const Tensor& out) override;
  void WriteKvCache(const Tensor& key, const Tensor& value, const Tensor& slot_mapping,
                    const Tensor& key_cache, const Tensor& value_cache) override;
  // In cuda_attention.cu.
  void PagedAttention(const PagedAttentionParams& params) override;
  void GatherRows(const Tensor& x, const Tensor& indices, const Tensor& out) override;
  // In cuda_argmax.cu.
  void ArgmaxRows(const Tensor& logits, int64_t num_valid_cols, const Tensor& max_values,
                  const Tensor& argmax) override;
  void PickShardArgmax(const Tensor& max_values, const Tensor& argmax, int64_t shard_cols,
                       const Tensor& token_ids) override;
  void FillPlaceholders(const Tensor& token_ids, const Tensor& fills,
                        const Tensor& sampled) override;
  void CopyBlocks(const Tensor& cache, const Tensor& pairs) override;
  void Cast(const Tensor& in, const Tensor& out) override;
  // In cuda_sampling.cu.
  void SampleRows(const SampleRowsArgs& args) override;

  absl::Status TakeFailure() override;
  // Records `failure` for TakeFailure (the first one counts).
  void Fail(absl::Status failure) { RecordFailure(std::move(failure)); }
  // After a kernel launch: records a launch the runtime refused (or an earlier asynchronous
  // error it reports), naming the op.
  void NoteLaunch(const char* op);
  // Records a failed runtime call made by `op`.
  void NoteCall(const char* op, cudaError_t error);

  cudaStream_t stream() const;
  // Device scratch memory of at least `bytes`, for ops run in stream order. Grows with cudaMalloc
  // (so size it before capturing a CUDA graph: warm up first). A buffer that is outgrown is kept
  // until the ops are destroyed, never freed: a captured graph may still point at it, and
  // replaying that graph must not write memory handed to someone else. Growth at least doubles,
  // so the kept buffers add up to less than the current one. Null (the failure recorded for
  // TakeFailure) when the GPU has no memory for it: the op then launches nothing.
  void* Workspace(size_t bytes);

 private:
  CudaDevice* device_;
  cublasLtHandle_t cublas_ = nullptr;
  void* cublas_workspace_ = nullptr;
  size_t cublas_workspace_bytes_ = 0;
  std::unique_ptr<cuda::LinearPlans> linear_plans_;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::vector<void*> outgrown_workspaces_;  // see Workspace()
};

}  // namespace pagedllm::kernels
