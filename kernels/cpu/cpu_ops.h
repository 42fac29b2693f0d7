// CpuOps: the float32 reference implementation of the operator interface (kernels/ops.h).
//
// Every call runs to completion before it returns. Linear goes to OpenBLAS; attention, RoPE
// and the row-wise ops are plain loops spread over the device's ThreadPool. Float tensors are
// float32 except where noted: the copy ops (Embedding, GatherRows, WriteKvCache, CopyBlocks)
// take any dtype that matches between their inputs and outputs, and Cast converts between
// float32, bfloat16 and float16. Owned by a CpuDevice; used from one thread.
#pragma once

#include "kernels/ops.h"

namespace pagedllm::kernels {
class Device;
}  // namespace pagedllm::kernels

namespace pagedllm::kernels::cpu {

class ThreadPool;

class CpuOps : public Ops {
 public:
  // Neither pointer is owned; both outlive the CpuOps.
  CpuOps(const Device* device, ThreadPool* pool) : device_(device), pool_(pool) {}

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
  void PagedAttention(const PagedAttentionParams& params) override;
  void GatherRows(const Tensor& x, const Tensor& indices, const Tensor& out) override;
  void ArgmaxRows(const Tensor& logits, int64_t num_valid_cols, const Tensor& max_values,
                  const Tensor& argmax) override;
  void PickShardArgmax(const Tensor& max_values, const Tensor& argmax, int64_t shard_cols,
                       const Tensor& token_ids) override;
  void FillPlaceholders(const Tensor& token_ids, const Tensor& fills,
                        const Tensor& sampled) override;
  void CopyBlocks(const Tensor& cache, const Tensor& pairs) override;
  void Cast(const Tensor& in, const Tensor& out) override;
  // In cpu_sampling.cc.
  void SampleRows(const SampleRowsArgs& args) override;

 private:
  const Device* device_;
  ThreadPool* pool_;
};

}  // namespace pagedllm::kernels::cpu
