#include "worker/model_runner.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status.h"

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

absl::StatusOr<ForwardBatch> ModelRunner::Upload(const HostBatch& host) {
  ForwardBatch batch;
  const int64_t tokens = host.num_tokens();
  const int64_t seqs = host.num_seqs();
  PAGEDLLM_ASSIGN_OR_RETURN(batch.token_ids,
                            device_->FromHost(DType::kInt32, {tokens}, host.token_ids));
  PAGEDLLM_ASSIGN_OR_RETURN(batch.positions,
                            device_->FromHost(DType::kInt32, {tokens}, host.positions));
  PAGEDLLM_ASSIGN_OR_RETURN(batch.slot_mapping,
                            device_->FromHost(DType::kInt32, {tokens}, host.slot_mapping));
  PAGEDLLM_ASSIGN_OR_RETURN(
      batch.block_tables,
      device_->FromHost(DType::kInt32, {seqs, host.max_blocks_per_seq}, host.block_tables));
  PAGEDLLM_ASSIGN_OR_RETURN(batch.query_start,
                            device_->FromHost(DType::kInt32, {seqs + 1}, host.query_start));
  PAGEDLLM_ASSIGN_OR_RETURN(batch.context_lens,
                            device_->FromHost(DType::kInt32, {seqs}, host.context_lens));
  for (int64_t s = 0; s < seqs; ++s) {
    batch.max_query_len =
        std::max(batch.max_query_len, host.query_start[s + 1] - host.query_start[s]);
  }
  if (!host.sample_rows.empty()) {
    PAGEDLLM_ASSIGN_OR_RETURN(
        batch.sample_rows,
        device_->FromHost(DType::kInt32, {static_cast<int64_t>(host.sample_rows.size())},
                          host.sample_rows));
  }
  return batch;
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

bool ModelRunner::AllGreedy(const HostBatch& host) {
  for (uint64_t seq_id : host.sample_seq_ids) {
    const SamplingParams& params = state_.sampling(seq_id);
    if (!params.greedy() || params.num_top_logprobs >= 0) return false;
  }
  return true;
}

absl::StatusOr<std::vector<int32_t>> ModelRunner::GreedyTokens(const HostBatch& host,
                                                               const Tensor& logits_local) {
  const LlamaDims& dims = model_->dims();
  const int64_t rows = logits_local.dim(0);
  const int world = comm_->world_size();
  const int64_t valid = std::min(dims.vocab_local, dims.vocab_size - dims.vocab_begin);
  PAGEDLLM_ASSIGN_OR_RETURN(Tensor values, device_->Allocate(DType::kFloat32, {rows}));
  PAGEDLLM_ASSIGN_OR_RETURN(Tensor ids, device_->Allocate(DType::kInt32, {rows}));
  device_->ops().ArgmaxRows(logits_local, valid, values, ids);
  Tensor all_values = values, all_ids = ids;  // [world * P], rank-major
  if (world > 1) {
    PAGEDLLM_ASSIGN_OR_RETURN(all_values, device_->Allocate(DType::kFloat32, {world * rows}));
    PAGEDLLM_ASSIGN_OR_RETURN(all_ids, device_->Allocate(DType::kInt32, {world * rows}));
    PAGEDLLM_RETURN_IF_ERROR(comm_->AllGather(values, all_values));
    PAGEDLLM_RETURN_IF_ERROR(comm_->AllGather(ids, all_ids));
  }
  // Every rank picks: each needs the tokens (a placeholder of the next step stands for them).
  MarkWorkDone();
  std::vector<float> host_values(all_values.bytes() / sizeof(float));
  std::vector<int32_t> host_ids(all_ids.bytes() / sizeof(int32_t));
  device_->CopyDeviceToHost(host_values.data(), all_values.raw_data(), all_values.bytes());
  device_->CopyDeviceToHost(host_ids.data(), all_ids.raw_data(), all_ids.bytes());
  device_->Synchronize();  // one wait for both copies
  std::vector<int32_t> tokens(rows, 0);
  for (int64_t p = 0; p < rows; ++p) {
    float best = -std::numeric_limits<float>::infinity();
    for (int r = 0; r < world; ++r) {
      // Ranks hold ascending id ranges: a strictly larger value is needed to move on, so ties
      // keep the lowest id, as SampleRows does.
      if (host_values[r * rows + p] > best) {
        best = host_values[r * rows + p];
        tokens[p] = static_cast<int32_t>(host_ids[r * rows + p] + r * dims.vocab_local);
      }
    }
  }
  RecordSampled(host, tokens);
  return tokens;
}

absl::StatusOr<std::vector<int32_t>> ModelRunner::ShareRank0Tokens(const HostBatch& host,
                                                                   const Tensor& token_ids) {
  Tensor all = token_ids;  // [world * P], rank-major
  const int world = comm_->world_size();
  if (world > 1) {
    PAGEDLLM_ASSIGN_OR_RETURN(all, device_->Allocate(DType::kInt32, {world * token_ids.dim(0)}));
    PAGEDLLM_RETURN_IF_ERROR(comm_->AllGather(token_ids, all));
  }
  MarkWorkDone();
  std::vector<int32_t> tokens = device_->ToHost<int32_t>(all);
  tokens.resize(token_ids.dim(0));
  RecordSampled(host, tokens);
  return tokens;
}

void ModelRunner::RecordSampled(const HostBatch& host, const std::vector<int32_t>& tokens) {
  for (size_t p = 0; p < tokens.size(); ++p) {
    state_.RecordSampled(host.sample_seq_ids[p], tokens[p]);
  }
}

absl::Status ModelRunner::SampleOnDevice(const HostBatch& host, const Tensor& logits_local,
                                         wv1::StepResult* result) {
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
    PAGEDLLM_RETURN_IF_ERROR(ShareRank0Tokens(host, token_ids).status());
    return absl::OkStatus();
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
  PAGEDLLM_ASSIGN_OR_RETURN(const std::vector<int32_t> tokens, ShareRank0Tokens(host, token_ids));
  const std::vector<float> logprobs = device_->ToHost<float>(args.logprobs);
  std::vector<int32_t> top_ids;
  std::vector<float> top_logprobs;
  if (num_top > 0) {
    top_ids = device_->ToHost<int32_t>(args.top_ids);
    top_logprobs = device_->ToHost<float>(args.top_logprobs);
  }
  for (int64_t p = 0; p < rows; ++p) {
    const uint64_t seq_id = host.sample_seq_ids[p];
    wv1::SampledToken* out = result->add_tokens();
    out->set_seq_id(seq_id);
    out->set_token_id(tokens[p]);
    if (state_.sampling(seq_id).num_top_logprobs < 0) continue;
    out->set_logprob(logprobs[p]);
    for (int j = 0; j < params[p].num_top_logprobs; ++j) {
      const int32_t id = top_ids[p * num_top + j];
      if (id < 0) break;  // fewer non-NaN logits than asked
      wv1::TopToken* top_out = out->add_top();
      top_out->set_token_id(id);
      top_out->set_logprob(top_logprobs[p * num_top + j]);
    }
  }
  return absl::OkStatus();
}

void ModelRunner::MarkWorkDone() {
  if (comm_->rank() == 0 && work_done_ == nullptr) work_done_ = device_->Mark().value_or(nullptr);
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

absl::StatusOr<wv1::StepResult> ModelRunner::ExecuteStep(const wv1::StepInstruction& step) {
  const auto start = std::chrono::steady_clock::now();
  HostBatch host;
  PAGEDLLM_RETURN_IF_ERROR(state_.Apply(step, &host));

  wv1::StepResult result;
  result.set_step_id(step.step_id());
  // The device's timeline (rank 0 reports it): where this step's work begins.
  std::unique_ptr<kernels::DeviceMark> begun;
  if (comm_->rank() == 0) begun = device_->Mark().value_or(nullptr);
  work_done_.reset();
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
  if (host.num_seqs() > 0) {
    Tensor logits_local;
    if (graphs_ != nullptr && graphs_->CanRun(host)) {
      absl::StatusOr<Tensor> replayed = graphs_->Run(host);
      // Out of memory for this bucket's graph: it runs eagerly (now and from then on).
      if (!replayed.ok() && !absl::IsResourceExhausted(replayed.status())) {
        return replayed.status();
      }
      if (replayed.ok()) logits_local = *std::move(replayed);
    }
    if (logits_local.empty()) {
      PAGEDLLM_ASSIGN_OR_RETURN(ForwardBatch batch, Upload(host));
      PAGEDLLM_ASSIGN_OR_RETURN(logits_local, model_->Forward(batch, cache_));
    }
    if (host.sample_rows.empty()) {
      // Only prefill chunks that end before their prompt does: nothing to sample.
    } else if (AllGreedy(host)) {
      PAGEDLLM_ASSIGN_OR_RETURN(std::vector<int32_t> tokens, GreedyTokens(host, logits_local));
      for (size_t p = 0; comm_->rank() == 0 && p < tokens.size(); ++p) {
        wv1::SampledToken* out = result.add_tokens();
        out->set_seq_id(host.sample_seq_ids[p]);
        out->set_token_id(tokens[p]);
      }
    } else {
      PAGEDLLM_RETURN_IF_ERROR(SampleOnDevice(host, logits_local, &result));
    }
  }
  MarkWorkDone();  // a step without samples ends here
  device_->Synchronize();
  RecordTimeline(std::move(begun), std::move(work_done_), &result);
  result.set_forward_ns(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count());
  return result;
}

}  // namespace pagedllm::worker
