// DecodeGraphs: runs decode-only steps (every sequence computes one token and samples) through
// captured device graphs, one per padded batch size (1, 2, 4, ..., max_batch) and padded
// block-table width (powers of two: the attention kernel splits long contexts by the table's
// width, so a table far wider than the batch needs would waste work), so a decode step costs one
// graph launch instead of hundreds of kernel launches.
//
// Each bucket owns static input tensors, views of one int32 tensor (its logits are rows of one
// buffer all buckets share); a step writes its batch into them with one copy from pinned memory,
// padded to the bucket: padding rows read token 0 at position 0
// of block 0 and write nowhere (slot -1), and their logits are ignored. A bucket's graph is
// captured the first time a batch needs it, after one eager warm-up run (which sizes the kernels'
// workspaces). On the CPU the "graph" re-runs the forward pass, so the same path (padding, static
// buffers) is tested without a GPU. Borrows the device, the model and the cache; used from the step
// thread.
#pragma once

#include <map>
#include <memory>
#include <set>

#include "absl/status/statusor.h"
#include "kernels/device.h"
#include "worker/model/kv_cache.h"
#include "worker/model/llama_model.h"
#include "worker/pinned_buffer.h"
#include "worker/step_state.h"

namespace pagedllm::worker {

class DecodeGraphs {
 public:
  // `max_blocks_per_seq`: block-table columns of every bucket (max_model_len / block_size).
  DecodeGraphs(kernels::Device* device, LlamaModel* model, KvCache* cache, int max_batch,
               int max_blocks_per_seq);

  // True when `batch` is decode-only, fits the largest bucket, and its bucket's capture has not
  // failed before.
  bool CanRun(const HostBatch& batch) const;
  // This rank's logits of the batch's sampled rows: [num_seqs, vocab_local] (a view into the
  // bucket's output: valid until the next Run). When capturing the bucket's graph runs out of
  // memory (graphs are captured after the KV pool took its share), returns RESOURCE_EXHAUSTED and
  // remembers the bucket, so CanRun refuses it from then on: the caller runs the step eagerly.
  // Other ranks may have captured the same bucket; that is fine, as a replay issues the same
  // collectives in the same order as an eager forward pass.
  // The inputs go through `staging` (keep it unchanged until the step has run); the batch's
  // placeholders are filled from `previous_sampled`, the step before's sampled tokens.
  absl::StatusOr<kernels::Tensor> Run(const HostBatch& batch, PinnedBuffer& staging,
                                      const kernels::Tensor& previous_sampled);

  int num_captured() const { return static_cast<int>(buckets_.size()); }

 private:
  struct Bucket {
    int size = 0;
    int table_width = 0;     // block-table columns
    kernels::Tensor packed;  // every input below, back to back (PackedViews)
    ForwardBatch inputs;     // static: [size] / [size, table_width] / [size + 1]
    kernels::Tensor fills;   // [size, 2]: room for the step's placeholder fills
    kernels::Tensor logits;  // [size, vocab_local]: a view of logits_, written by each replay
    std::unique_ptr<kernels::DeviceGraph> graph;
  };

  int BucketSize(int num_seqs) const;
  int TableWidth(int max_blocks) const;
  absl::StatusOr<Bucket*> GetBucket(int size, int table_width);
  absl::Status Fill(const HostBatch& batch, Bucket& bucket, PinnedBuffer& staging,
                    const kernels::Tensor& previous_sampled);

  kernels::Device* device_;
  LlamaModel* model_;
  KvCache* cache_;
  const int max_batch_;
  const int max_blocks_per_seq_;
  std::map<std::pair<int, int>, std::unique_ptr<Bucket>> buckets_;  // by (size, table_width)
  std::set<std::pair<int, int>> failed_;  // buckets whose capture ran out of memory
  // [max_batch, vocab_local]: every bucket's logits, as only one graph runs at a time (the graph
  // pool shares their other memory the same way, see CudaDevice::CaptureGraph).
  kernels::Tensor logits_;
};

}  // namespace pagedllm::worker
