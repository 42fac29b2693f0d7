// Runs one coordinator step on this rank: applies the instruction to the state mirror, does the
// step's block copies, the forward pass, gathers the vocab-parallel logits and (rank 0) samples.
// Owns the model, the KV cache and the state mirror; borrows the device and communicator.
// Every rank must call ExecuteStep with the same instructions in the same order, since the
// forward pass contains collectives. Used from one thread.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "kernels/device.h"
#include "pagedllm/worker/v1/worker.pb.h"
#include "parallel/communicator.h"
#include "worker/decode_graphs.h"
#include "worker/model/kv_cache.h"
#include "worker/model/kv_swap_space.h"
#include "worker/model/llama_model.h"
#include "worker/step_state.h"

namespace pagedllm::worker {

class ModelRunner {
 public:
  // `decode_graph_max_batch` > 0 runs decode-only steps of up to that many sequences through
  // captured graphs (DecodeGraphs); 0 runs every step eagerly.
  ModelRunner(kernels::Device* device, parallel::Communicator* comm,
              std::unique_ptr<LlamaModel> model, KvCache cache, int max_model_len = 0,
              int decode_graph_max_batch = 0);

  // The StepResult is meaningful on rank 0 only (other ranks return an empty one).
  absl::StatusOr<pagedllm::worker::v1::StepResult> ExecuteStep(
      const pagedllm::worker::v1::StepInstruction& step);

  // The pinned host blocks that steps' swap_out / swap_in lists name (none by default: a step
  // that swaps is then refused).
  void set_swap_space(std::unique_ptr<KvSwapSpace> swap_space) {
    swap_space_ = std::move(swap_space);
  }

  const KvCache& cache() const { return cache_; }
  const LlamaModel& model() const { return *model_; }

 private:
  absl::StatusOr<ForwardBatch> Upload(const HostBatch& host);
  // The step's swap_out, then swap_in lists (before its block copies and forward pass).
  absl::Status ApplySwaps(const pagedllm::worker::v1::StepInstruction& step);
  // All-gathers each rank's [P, vocab_local] logits on the device: returns
  // [world * P, vocab_local], rank-major (the input itself when world is 1). Every rank calls it.
  absl::StatusOr<kernels::Tensor> GatherLogitsOnDevice(const kernels::Tensor& logits_local);
  // True when every sampled sequence of the step is greedy without logprobs: then the argmax
  // runs on the device and only one id per sequence (and rank) reaches the host.
  bool AllGreedy(const HostBatch& host);
  // Every rank: the greedy token of each row of the vocab-parallel logits [P, vocab_local].
  // Records them in the state mirror.
  absl::StatusOr<std::vector<int32_t>> GreedyTokens(const HostBatch& host,
                                                    const kernels::Tensor& logits_local);
  // Rank 0 samples every row on the device (Ops::SampleRows over the gathered vocab shards);
  // only ids and logprobs reach the host (all ranks gather).
  absl::Status SampleOnDevice(const HostBatch& host, const kernels::Tensor& logits_local,
                              pagedllm::worker::v1::StepResult* result);
  // Every rank: rank 0's sampled token_ids [P] (the other ranks' tensors are not read), on the
  // host, recorded in the state mirror.
  absl::StatusOr<std::vector<int32_t>> ShareRank0Tokens(const HostBatch& host,
                                                        const kernels::Tensor& token_ids);
  // The step's sampled tokens, in sample-row order, into the state mirror: the next step's
  // placeholders stand for them.
  void RecordSampled(const HostBatch& host, const std::vector<int32_t>& tokens);
  // Rank 0 (a no-op elsewhere): marks where the step's device work ends, before its tokens are read
  // back (the copy and the host's wait count as idle). The first call of a step counts.
  void MarkWorkDone();
  // Sets the result's device_busy_ns (begun to ended) and device_idle_before_ns (the previous
  // step's end to begun); the marks are reached (after Synchronize). Null marks: unknown (-1).
  void RecordTimeline(std::unique_ptr<kernels::DeviceMark> begun,
                      std::unique_ptr<kernels::DeviceMark> ended,
                      pagedllm::worker::v1::StepResult* result);

  kernels::Device* device_;
  parallel::Communicator* comm_;
  std::unique_ptr<LlamaModel> model_;
  KvCache cache_;
  StepState state_;
  std::unique_ptr<DecodeGraphs> graphs_;  // null when steps run eagerly
  std::unique_ptr<KvSwapSpace> swap_space_;
  std::unique_ptr<kernels::DeviceMark> work_done_;        // rank 0's timeline: this step's end
  std::unique_ptr<kernels::DeviceMark> last_step_ended_;  // and the step before's
};

}  // namespace pagedllm::worker
