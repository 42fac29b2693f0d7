// Runs one coordinator step on this rank: applies the instruction to the state mirror, does the
// step's block copies, the forward pass, gathers the vocab-parallel logits and (rank 0) samples.
// Owns the model, the KV cache and the state mirror; borrows the device and communicator.
// Every rank must call Launch with the same instructions in the same order, since the forward
// pass contains collectives. Used from one thread.
//
// A step is launched (its device work queued, ending in copies of its tokens to pinned memory)
// and later finished (waited for, its result read). Step t+1 may be launched before step t is
// finished: its inputs are copied and its placeholders filled from step t's tokens on the
// device, queued behind step t, so the device goes from one step to the next without waiting
// for the host (async scheduling). Finish steps in the order they were launched.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/device.h"
#include "pagedllm/worker/v1/worker.pb.h"
#include "parallel/communicator.h"
#include "worker/decode_graphs.h"
#include "worker/model/kv_cache.h"
#include "worker/model/kv_swap_space.h"
#include "worker/model/llama_model.h"
#include "worker/pinned_buffer.h"
#include "worker/step_state.h"

namespace pagedllm::worker {

class ModelRunner {
 public:
  // `decode_graph_max_batch` > 0 runs decode-only steps of up to that many sequences through
  // captured graphs (DecodeGraphs); 0 runs every step eagerly.
  ModelRunner(kernels::Device* device, parallel::Communicator* comm,
              std::unique_ptr<LlamaModel> model, KvCache cache, int max_model_len = 0,
              int decode_graph_max_batch = 0);

  // A step's pinned host memory: its inputs on the way up, its tokens on the way back.
  struct StepBuffers {
    explicit StepBuffers(kernels::Device* device) : upload(device), readback(device) {}
    PinnedBuffer upload;
    PinnedBuffer readback;
  };

  // A launched step: what Finish needs to read its outcome.
  struct LaunchedStep {
    uint64_t step_id = 0;
    std::chrono::steady_clock::time_point start;
    // Rank 0: the sequences of the sampled rows; when the device sampler ran, each row's
    // number of top logprobs to report (-1: no logprobs; empty: the rows are greedy ids).
    std::vector<uint64_t> sample_seq_ids;
    std::vector<int32_t> row_top_logprobs;
    int num_top = 0;  // columns of the top-logprob read-backs
    std::unique_ptr<StepBuffers> buffers;
    // The device's timeline: the step's work begins, its work is done (rank 0), and its
    // read-backs have landed (every rank; never null).
    std::unique_ptr<kernels::DeviceMark> begun, work_done, end;
  };

  // Applies the step to the state mirror and queues its device work. Fails (the step is then
  // not launched) on an inconsistent instruction or a device that cannot take it.
  absl::StatusOr<LaunchedStep> Launch(const pagedllm::worker::v1::StepInstruction& step);
  // Whether the launched step's device work has ended, without waiting.
  absl::StatusOr<bool> Done(const LaunchedStep& step);
  // Waits for the step's device work and reads its outcome. The StepResult is meaningful on rank
  // 0 only (other ranks return an empty one).
  absl::StatusOr<pagedllm::worker::v1::StepResult> Finish(LaunchedStep step);

  // The pinned host blocks that steps' swap_out / swap_in lists name (none by default: a step
  // that swaps is then refused).
  void set_swap_space(std::unique_ptr<KvSwapSpace> swap_space) {
    swap_space_ = std::move(swap_space);
  }

  const KvCache& cache() const { return cache_; }
  const LlamaModel& model() const { return *model_; }

 private:
  // The batch's inputs in one copy through `staging`, its placeholders filled on the device.
  absl::StatusOr<ForwardBatch> Upload(const HostBatch& host, PinnedBuffer& staging);
  // This rank's logits of the step's sampled rows (graph or eager).
  absl::StatusOr<kernels::Tensor> RunForward(const HostBatch& host, PinnedBuffer& staging);
  // The step's swap_out, then swap_in lists (before its block copies and forward pass).
  absl::Status ApplySwaps(const pagedllm::worker::v1::StepInstruction& step);
  // All-gathers each rank's [P, vocab_local] logits on the device: returns
  // [world * P, vocab_local], rank-major (the input itself when world is 1). Every rank calls it.
  absl::StatusOr<kernels::Tensor> GatherLogitsOnDevice(const kernels::Tensor& logits_local);
  // Every rank: the greedy token of each row of the vocab-parallel logits [P, vocab_local], on
  // the device; rank 0 queues their read-back.
  absl::StatusOr<kernels::Tensor> GreedyTokens(const kernels::Tensor& logits_local,
                                               LaunchedStep* launched);
  // Rank 0 samples every row on the device (Ops::SampleRows over the gathered vocab shards) and
  // queues the read-back of ids and logprobs; every rank returns rank 0's ids, on the device.
  absl::StatusOr<kernels::Tensor> SampleOnDevice(const HostBatch& host,
                                                 const kernels::Tensor& logits_local,
                                                 LaunchedStep* launched);
  // Every rank: rank 0's sampled token_ids [P] (the other ranks' tensors are not read), on the
  // device.
  absl::StatusOr<kernels::Tensor> ShareRank0Tokens(const kernels::Tensor& token_ids);
  // Rank 0 (a no-op elsewhere): marks where the step's device work ends, before its tokens are
  // copied back (the copy and the host's wait count as idle). The first call of a step counts.
  void MarkWorkDone(LaunchedStep* launched);
  // Queues the copy of `tensor` into the step's read-back buffer at `offset` bytes.
  void ReadBack(const kernels::Tensor& tensor, size_t offset, LaunchedStep* launched);
  // Sets the result's device_busy_ns (begun to ended) and device_idle_before_ns (the previous
  // step's end to begun); the marks are reached. Null marks: unknown (-1).
  void RecordTimeline(std::unique_ptr<kernels::DeviceMark> begun,
                      std::unique_ptr<kernels::DeviceMark> ended,
                      pagedllm::worker::v1::StepResult* result);
  // Rank 0: the result's tokens (and logprobs), from the finished step's read-backs.
  void ReadResult(const LaunchedStep& step, pagedllm::worker::v1::StepResult* result) const;

  kernels::Device* device_;
  parallel::Communicator* comm_;
  std::unique_ptr<LlamaModel> model_;
  KvCache cache_;
  StepState state_;
  std::unique_ptr<DecodeGraphs> graphs_;  // null when steps run eagerly
  std::unique_ptr<KvSwapSpace> swap_space_;
  std::unique_ptr<kernels::DeviceMark> last_step_ended_;  // rank 0's timeline: the last step's end
  // The last launched step's sampled tokens [P] on the device (empty when it sampled none): the
  // next step's placeholders are filled from them.
  kernels::Tensor previous_sampled_;
  std::vector<std::unique_ptr<StepBuffers>> spare_buffers_;  // of finished steps, for reuse
  std::chrono::steady_clock::time_point last_finished_;
};

}  // namespace pagedllm::worker
