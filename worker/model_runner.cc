#include "worker/model_runner.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "worker/packed_upload.h"

namespace pagedllm::worker {

namespace wv1 = pagedllm::worker::v1;
using kernels::DType;
using kernels::Tensor;

ModelRunner::ModelRunner(kernels::Device* device, parallel::Communicator* comm,
                         std::unique_ptr<LlamaModel> model, KvCache cache, int max_model_len,
                         int decode_graph_max_batch)
    : device_(device),
      comm_(comm),
      model_(std::move(model)),
      cache_(std::move(cache)),
      state_(cache_.num_blocks(), cache_.block_size(),
             static_cast<int>(model_->dims().vocab_size)) {
  if (decode_graph_max_batch > 0 && max_model_len > 0) {
    const int max_blocks = (max_model_len + cache_.block_size() - 1) / cache_.block_size();
    graphs_ = std::make_unique<DecodeGraphs>(device_, model_.get(), &cache_, decode_graph_max_batch,
                                             max_blocks);
  }
}

absl::StatusOr<ForwardBatch> ModelRunner::Upload(const HostBatch& host, PinnedBuffer& staging) {
  const int64_t tokens = host.num_tokens();
  const int64_t seqs = host.num_seqs();
  const int64_t samples = static_cast<int64_t>(host.sample_rows.size());
  const int64_t fills = static_cast<int64_t>(host.placeholder_fills.size() / 2);
  const std::vector<std::vector<int64_t>> shapes =
      StepInputShapes(tokens, seqs, host.max_blocks_per_seq, samples, fills);
  PAGEDLLM_ASSIGN_OR_RETURN(Tensor packed,
                            device_->Allocate(DType::kInt32, {PackedLength(shapes)}));
  PAGEDLLM_RETURN_IF_ERROR(CopyPacked(
      *device_,
      {&host.token_ids, &host.positions, &host.slot_mapping, &host.block_tables, &host.query_start,
       &host.context_lens, &host.sample_rows, &host.placeholder_fills},
      staging, packed));
  Tensor fill_pairs;
  ForwardBatch batch = StepInputViews(packed, shapes, &fill_pairs);
  if (fills > 0) device_->ops().FillPlaceholders(batch.token_ids, fill_pairs, previous_sampled_);
  batch.max_query_len = host.max_query_len;
  return batch;
}

absl::StatusOr<Tensor> ModelRunner::RunForward(const HostBatch& host, PinnedBuffer& staging) {
  if (graphs_ != nullptr && graphs_->CanRun(host)) {
    absl::StatusOr<Tensor> replayed = graphs_->Run(host, staging, previous_sampled_);
    if (replayed.ok()) return replayed;
    // Out of memory for this bucket's graph: it runs eagerly (now and from then on).
    if (!absl::IsResourceExhausted(replayed.status())) return replayed.status();
    device_->Synchronize();  // the graph's inputs may still be on their way from `staging`
  }
  PAGEDLLM_ASSIGN_OR_RETURN(ForwardBatch batch, Upload(host, staging));
  return model_->Forward(batch, cache_);
}

absl::Status ModelRunner::ApplySwaps(const wv1::StepInstruction& step) {
  if (step.swap_out().empty() && step.swap_in().empty()) return absl::OkStatus();
  if (swap_space_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("step ", step.step_id(),
                     " swaps KV blocks, but this worker has no swap space "
                     "(--swap_space_gib)"));
  }
  const auto to_swaps = [](const auto& list) {
    std::vector<kernels::BlockSwap> swaps;
    swaps.reserve(list.size());
    for (const wv1::BlockSwap& swap : list)
      swaps.push_back({swap.device_block(), swap.host_block()});
    return swaps;
  };
  PAGEDLLM_RETURN_IF_ERROR(swap_space_->SwapOut(cache_, to_swaps(step.swap_out())));
  return swap_space_->SwapIn(cache_, to_swaps(step.swap_in()));
}

absl::StatusOr<Tensor> ModelRunner::GatherLogitsOnDevice(const Tensor& logits_local) {
  const int world = comm_->world_size();
  if (world == 1) return logits_local;
  PAGEDLLM_ASSIGN_OR_RETURN(
      Tensor gathered,
      device_->Allocate(logits_local.dtype(), {world * logits_local.dim(0), logits_local.dim(1)}));
  PAGEDLLM_RETURN_IF_ERROR(comm_->AllGather(logits_local, gathered));
  return gathered;
}

void ModelRunner::ReadBack(const Tensor& tensor, size_t offset, LaunchedStep* launched) {
  device_->CopyDeviceToHost(launched->buffers->readback.data() + offset, tensor.raw_data(),
                            tensor.bytes());
}

absl::StatusOr<Tensor> ModelRunner::GreedyTokens(const Tensor& logits_local,
                                                 LaunchedStep* launched) {
  const LlamaDims& dims = model_->dims();
  const int64_t rows = logits_local.dim(0);
  const int world = comm_->world_size();
  const int64_t valid = std::min(dims.vocab_local, dims.vocab_size - dims.vocab_begin);
  PAGEDLLM_ASSIGN_OR_RETURN(Tensor values, device_->Allocate(DType::kFloat32, {rows}));
  PAGEDLLM_ASSIGN_OR_RETURN(Tensor tokens, device_->Allocate(DType::kInt32, {rows}));
  device_->ops().ArgmaxRows(logits_local, valid, values, tokens);
  if (world > 1) {
    // Every rank picks among the shards' maxima: each needs the tokens (a placeholder of the
    // next step stands for them).
    PAGEDLLM_ASSIGN_OR_RETURN(Tensor all_values, device_->Allocate(DType::kFloat32, {world, rows}));
    PAGEDLLM_ASSIGN_OR_RETURN(Tensor all_ids, device_->Allocate(DType::kInt32, {world, rows}));
    PAGEDLLM_RETURN_IF_ERROR(comm_->AllGather(values, all_values.Reshape({world * rows})));
    PAGEDLLM_RETURN_IF_ERROR(comm_->AllGather(tokens, all_ids.Reshape({world * rows})));
    PAGEDLLM_ASSIGN_OR_RETURN(tokens, device_->Allocate(DType::kInt32, {rows}));
    device_->ops().PickShardArgmax(all_values, all_ids, dims.vocab_local, tokens);
  }
  MarkWorkDone(launched);
  if (comm_->rank() == 0) ReadBack(tokens, 0, launched);
  return tokens;
}

absl::StatusOr<Tensor> ModelRunner::ShareRank0Tokens(const Tensor& token_ids) {
  const int world = comm_->world_size();
  if (world == 1) return token_ids;
  const int64_t rows = token_ids.dim(0);
  PAGEDLLM_ASSIGN_OR_RETURN(Tensor all, device_->Allocate(DType::kInt32, {world * rows}));
  PAGEDLLM_RETURN_IF_ERROR(comm_->AllGather(token_ids, all));  // rank-major
  return all.Slice(0, rows);
}

absl::StatusOr<Tensor> ModelRunner::SampleOnDevice(const HostBatch& host,
                                                   const Tensor& logits_local,
                                                   LaunchedStep* launched) {
  const int64_t rows = static_cast<int64_t>(host.sample_seq_ids.size());
  std::vector<kernels::SampleRowParams> params;  // [P]
  params.reserve(host.sample_seq_ids.size());
  int num_top = 0;
  for (uint64_t seq_id : host.sample_seq_ids) {
    params.push_back(state_.NextSampleParams(seq_id));  // every rank counts the draws
    num_top = std::max(num_top, params.back().num_top_logprobs);
  }
  PAGEDLLM_ASSIGN_OR_RETURN(Tensor gathered, GatherLogitsOnDevice(logits_local));
  PAGEDLLM_ASSIGN_OR_RETURN(Tensor token_ids, device_->Allocate(DType::kInt32, {rows}));
  if (comm_->rank() != 0) {
    // Rank 0 samples; the others learn its tokens (a placeholder of the next step stands for
    // them) from the same all-gather, their own rows left unread.
    return ShareRank0Tokens(token_ids);
  }

  std::vector<int32_t> words(params.size() * kernels::kSampleRowParamWords);  // [P, words]
  std::memcpy(words.data(), params.data(), params.size() * sizeof(kernels::SampleRowParams));
  kernels::SampleRowsArgs args;
  args.logits = gathered;
  args.num_shards = comm_->world_size();
  args.vocab_size = model_->dims().vocab_size;
  PAGEDLLM_ASSIGN_OR_RETURN(
      args.params, device_->FromHost(DType::kInt32, {rows, kernels::kSampleRowParamWords}, words));
  args.token_ids = token_ids;
  PAGEDLLM_ASSIGN_OR_RETURN(args.logprobs, device_->Allocate(DType::kFloat32, {rows}));
  if (num_top > 0) {
    PAGEDLLM_ASSIGN_OR_RETURN(args.top_ids, device_->Allocate(DType::kInt32, {rows, num_top}));
    PAGEDLLM_ASSIGN_OR_RETURN(args.top_logprobs,
                              device_->Allocate(DType::kFloat32, {rows, num_top}));
  }
  device_->ops().SampleRows(args);
  PAGEDLLM_ASSIGN_OR_RETURN(Tensor tokens, ShareRank0Tokens(token_ids));
  MarkWorkDone(launched);
  // Read back (rank 0): ids [P], logprobs [P], top ids and top logprobs [P, num_top].
  const size_t row_bytes = sizeof(int32_t);
  const size_t top_bytes = static_cast<size_t>(rows) * num_top * sizeof(int32_t);
  PAGEDLLM_RETURN_IF_ERROR(
      launched->buffers->readback.Reserve(2 * rows * row_bytes + 2 * top_bytes));
  ReadBack(tokens, 0, launched);
  ReadBack(args.logprobs, rows * row_bytes, launched);
  if (num_top > 0) {
    ReadBack(args.top_ids, 2 * rows * row_bytes, launched);
    ReadBack(args.top_logprobs, 2 * rows * row_bytes + top_bytes, launched);
  }
  launched->num_top = num_top;
  launched->row_top_logprobs = host.sample_top_logprobs;
  return tokens;
}

void ModelRunner::MarkWorkDone(LaunchedStep* launched) {
  if (comm_->rank() == 0 && launched->work_done == nullptr) {
    launched->work_done = device_->Mark().value_or(nullptr);
  }
}

void ModelRunner::RecordTimeline(std::unique_ptr<kernels::DeviceMark> begun,
                                 std::unique_ptr<kernels::DeviceMark> ended,
                                 wv1::StepResult* result) {
  result->set_device_busy_ns(-1);
  result->set_device_idle_before_ns(-1);
  if (begun == nullptr || ended == nullptr) return;
  result->set_device_busy_ns(device_->NanosBetween(*begun, *ended).value_or(-1));
  if (last_step_ended_ != nullptr) {
    result->set_device_idle_before_ns(
        device_->NanosBetween(*last_step_ended_, *begun).value_or(-1));
  }
  last_step_ended_ = std::move(ended);
}

absl::StatusOr<ModelRunner::LaunchedStep> ModelRunner::Launch(const wv1::StepInstruction& step) {
  LaunchedStep launched;
  launched.step_id = step.step_id();
  launched.start = std::chrono::steady_clock::now();
  HostBatch host;
  PAGEDLLM_RETURN_IF_ERROR(state_.Apply(step, &host));
  if (spare_buffers_.empty()) {
    launched.buffers = std::make_unique<StepBuffers>(device_);
  } else {
    launched.buffers = std::move(spare_buffers_.back());
    spare_buffers_.pop_back();
  }
  // Room for the greedy read-back (SampleOnDevice reserves its own).
  PAGEDLLM_RETURN_IF_ERROR(
      launched.buffers->readback.Reserve(host.sample_rows.size() * sizeof(int32_t)));

  // The device's timeline (rank 0 reports it): where this step's work begins.
  if (comm_->rank() == 0) launched.begun = device_->Mark().value_or(nullptr);
  PAGEDLLM_RETURN_IF_ERROR(ApplySwaps(step));
  if (!host.block_copies.empty()) {
    PAGEDLLM_ASSIGN_OR_RETURN(
        Tensor pairs,
        device_->FromHost(DType::kInt32, {static_cast<int64_t>(host.block_copies.size() / 2), 2},
                          host.block_copies));
    for (int layer = 0; layer < model_->dims().num_layers; ++layer) {
      device_->ops().CopyBlocks(cache_.key(layer), pairs);
      device_->ops().CopyBlocks(cache_.value(layer), pairs);
    }
  }
  Tensor sampled;  // this step's tokens on the device: the next step's placeholders
  if (host.num_seqs() > 0) {
    PAGEDLLM_ASSIGN_OR_RETURN(Tensor logits_local, RunForward(host, launched.buffers->upload));
    if (host.sample_rows.empty()) {
      // Only prefill chunks that end before their prompt does: nothing to sample.
    } else if (host.all_greedy) {
      PAGEDLLM_ASSIGN_OR_RETURN(sampled, GreedyTokens(logits_local, &launched));
    } else {
      PAGEDLLM_ASSIGN_OR_RETURN(sampled, SampleOnDevice(host, logits_local, &launched));
    }
  }
  // An op that could not run (no memory for its workspace, a launch refused) fails the step.
  if (absl::Status failed = device_->ops().TakeFailure(); !failed.ok()) {
    return absl::Status(failed.code(),
                        absl::StrCat("step ", step.step_id(), ": ", failed.message()));
  }
  previous_sampled_ = sampled;
  MarkWorkDone(&launched);  // a step without samples ends here
  PAGEDLLM_ASSIGN_OR_RETURN(launched.end, device_->Mark());
  if (comm_->rank() == 0) launched.sample_seq_ids = std::move(host.sample_seq_ids);
  return launched;
}

absl::StatusOr<bool> ModelRunner::Done(const LaunchedStep& step) {
  return device_->Reached(*step.end);
}

void ModelRunner::ReadResult(const LaunchedStep& step, wv1::StepResult* result) const {
  const int64_t rows = static_cast<int64_t>(step.sample_seq_ids.size());
  const char* readback = step.buffers->readback.data();
  const auto* tokens = reinterpret_cast<const int32_t*>(readback);
  const auto* logprobs = reinterpret_cast<const float*>(readback + rows * sizeof(int32_t));
  const auto* top_ids = reinterpret_cast<const int32_t*>(readback + 2 * rows * sizeof(int32_t));
  const auto* top_logprobs =
      reinterpret_cast<const float*>(top_ids + static_cast<size_t>(rows) * step.num_top);
  for (int64_t p = 0; p < rows; ++p) {
    wv1::SampledToken* out = result->add_tokens();
    out->set_seq_id(step.sample_seq_ids[p]);
    out->set_token_id(tokens[p]);
    if (step.row_top_logprobs.empty() || step.row_top_logprobs[p] < 0) continue;
    out->set_logprob(logprobs[p]);
    for (int j = 0; j < step.row_top_logprobs[p]; ++j) {
      const int32_t id = top_ids[p * step.num_top + j];
      if (id < 0) break;  // fewer non-NaN logits than asked
      wv1::TopToken* top_out = out->add_top();
      top_out->set_token_id(id);
      top_out->set_logprob(top_logprobs[p * step.num_top + j]);
    }
  }
}

absl::StatusOr<wv1::StepResult> ModelRunner::Finish(LaunchedStep step) {
  PAGEDLLM_RETURN_IF_ERROR(device_->WaitFor(*step.end));
  wv1::StepResult result;
  result.set_step_id(step.step_id);
  RecordTimeline(std::move(step.begun), std::move(step.work_done), &result);
  if (comm_->rank() == 0) ReadResult(step, &result);
  spare_buffers_.push_back(std::move(step.buffers));
  // The host's time for this step alone: from its launch, or from the step before's end when it
  // was launched while that one ran.
  const auto now = std::chrono::steady_clock::now();
  result.set_forward_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(
                            now - std::max(step.start, last_finished_))
                            .count());
  last_finished_ = now;
  return result;
}

}  // namespace pagedllm::worker
