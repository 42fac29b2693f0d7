#include "worker/decode_graphs.h"

#include <algorithm>
#include <vector>

#include "common/logging.h"
#include "common/status.h"
#include "worker/packed_upload.h"

namespace pagedllm::worker {

using kernels::DType;
using kernels::Tensor;

DecodeGraphs::DecodeGraphs(kernels::Device* device, LlamaModel* model, KvCache* cache,
                           int max_batch, int max_blocks_per_seq)
    : device_(device),
      model_(model),
      cache_(cache),
      max_batch_(max_batch),
      max_blocks_per_seq_(max_blocks_per_seq) {}

bool DecodeGraphs::CanRun(const HostBatch& batch) const {
  const int seqs = batch.num_seqs();
  return seqs > 0 && seqs <= max_batch_ && batch.num_tokens() == seqs &&
         static_cast<int>(batch.sample_rows.size()) == seqs &&
         batch.max_blocks_per_seq <= max_blocks_per_seq_ &&
         failed_.count({BucketSize(seqs), TableWidth(batch.max_blocks_per_seq)}) == 0;
}

int DecodeGraphs::BucketSize(int num_seqs) const {
  // 1, 2, 4, 8, then multiples of 8 up to 64, then of 32: padding wastes little, and the number
  // of graphs (and the memory they hold) stays small.
  int size = 1;
  while (size < num_seqs && size < 8) size *= 2;
  if (num_seqs > 8) size = num_seqs <= 64 ? (num_seqs + 7) / 8 * 8 : (num_seqs + 31) / 32 * 32;
  return std::min(size, max_batch_);
}

int DecodeGraphs::TableWidth(int max_blocks) const {
  int width = 8;
  while (width < max_blocks) width *= 2;
  return std::min(width, max_blocks_per_seq_);
}

absl::StatusOr<DecodeGraphs::Bucket*> DecodeGraphs::GetBucket(int size, int table_width) {
  auto it = buckets_.find({size, table_width});
  if (it != buckets_.end()) return it->second.get();
  auto bucket = std::make_unique<Bucket>();
  bucket->size = size;
  bucket->table_width = table_width;
  // The layout Fill copies in.
  const std::vector<std::vector<int64_t>> shapes =
      StepInputShapes(size, size, table_width, size, size);
  PAGEDLLM_ASSIGN_OR_RETURN(bucket->packed,
                            device_->Allocate(DType::kInt32, {PackedLength(shapes)}));
  bucket->inputs = StepInputViews(bucket->packed, shapes, &bucket->fills);
  ForwardBatch& in = bucket->inputs;
  in.max_query_len = 1;  // decode steps only (padding rows included): no prefill kernel
  if (logits_.empty()) {
    PAGEDLLM_ASSIGN_OR_RETURN(logits_, device_->Allocate(model_->compute_dtype(),
                                                         {max_batch_, model_->dims().vocab_local}));
  }
  in.logits_out = logits_.Slice(0, size);
  return buckets_.emplace(std::make_pair(size, table_width), std::move(bucket)).first->second.get();
}

absl::Status DecodeGraphs::Fill(const HostBatch& batch, Bucket& bucket, PinnedBuffer& staging,
                                const Tensor& previous_sampled) {
  const int size = bucket.size;
  const int seqs = batch.num_seqs();
  std::vector<int32_t> token_ids(size, 0), positions(size, 0), slots(size, -1),
      context_lens(size, 1), query_start(size + 1), rows(size);
  const int width = bucket.table_width;
  std::vector<int32_t> tables(static_cast<size_t>(size) * width, 0);
  for (int s = 0; s < size; ++s) {
    query_start[s] = s;
    rows[s] = s;
  }
  query_start[size] = size;
  std::copy(batch.token_ids.begin(), batch.token_ids.end(), token_ids.begin());
  std::copy(batch.positions.begin(), batch.positions.end(), positions.begin());
  std::copy(batch.slot_mapping.begin(), batch.slot_mapping.end(), slots.begin());
  std::copy(batch.context_lens.begin(), batch.context_lens.end(), context_lens.begin());
  for (int s = 0; s < seqs; ++s) {
    std::copy_n(batch.block_tables.begin() + static_cast<size_t>(s) * batch.max_blocks_per_seq,
                batch.max_blocks_per_seq, tables.begin() + static_cast<size_t>(s) * width);
  }
  // A decode batch's token i is sequence i's, so the fills index the padded inputs as they are.
  PAGEDLLM_RETURN_IF_ERROR(CopyPacked(*device_,
                                      {&token_ids, &positions, &slots, &tables, &query_start,
                                       &context_lens, &rows, &batch.placeholder_fills},
                                      staging, bucket.packed));
  const int64_t num_fills = static_cast<int64_t>(batch.placeholder_fills.size() / 2);
  if (num_fills > 0) {
    device_->ops().FillPlaceholders(bucket.inputs.token_ids, bucket.fills.Slice(0, num_fills),
                                    previous_sampled);
  }
  return absl::OkStatus();
}

absl::StatusOr<Tensor> DecodeGraphs::Run(const HostBatch& batch, PinnedBuffer& staging,
                                         const Tensor& previous_sampled) {
  PAGEDLLM_ASSIGN_OR_RETURN(Bucket * bucket, GetBucket(BucketSize(batch.num_seqs()),
                                                       TableWidth(batch.max_blocks_per_seq)));
  PAGEDLLM_RETURN_IF_ERROR(Fill(batch, *bucket, staging, previous_sampled));
  if (bucket->graph == nullptr) {
    // Warm up eagerly (kernels size their workspaces outside the capture), then capture.
    PAGEDLLM_ASSIGN_OR_RETURN(Tensor warm, model_->Forward(bucket->inputs, *cache_));
    device_->Synchronize();
    // An op that failed in the warm-up (no memory for its workspace, say) fails the capture too.
    absl::StatusOr<std::unique_ptr<kernels::DeviceGraph>> graph =
        device_->CaptureGraph([this, bucket]() -> absl::Status {
          PAGEDLLM_ASSIGN_OR_RETURN(bucket->logits, model_->Forward(bucket->inputs, *cache_));
          return device_->ops().TakeFailure();
        });
    if (!graph.ok()) {
      const std::pair<int, int> key = {bucket->size, bucket->table_width};
      if (absl::IsResourceExhausted(graph.status())) {
        PAGEDLLM_LOG(WARNING) << "no memory to capture the decode graph for batch " << key.first
                              << " x " << key.second
                              << " blocks; such steps run without a graph: " << graph.status();
        failed_.insert(key);
      }
      buckets_.erase(key);
      return graph.status();
    }
    bucket->graph = *std::move(graph);
    PAGEDLLM_LOG(INFO) << "captured the decode graph for batch " << bucket->size << " x "
                       << bucket->table_width << " blocks (" << buckets_.size() << " graphs)";
  }
  PAGEDLLM_RETURN_IF_ERROR(bucket->graph->Replay());
  return bucket->logits.Slice(0, batch.num_seqs());
}

}  // namespace pagedllm::worker
