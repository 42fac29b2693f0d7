#include "coordinator/engine/engine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace pagedllm::coordinator {
namespace {

GenerationChunk ErrorChunk(absl::Status status) {
  GenerationChunk chunk;
  chunk.error = std::move(status);
  return chunk;
}

GenerationChunk FinishChunk(FinishReason reason) {
  GenerationChunk chunk;
  chunk.finish_reason = reason;
  return chunk;
}

}  // namespace

Engine::Engine(SchedulerConfig scheduler_config, ModelLimits limits, StepExecutor* executor)
    : limits_(std::move(limits)), executor_(executor), scheduler_(scheduler_config) {}

Engine::~Engine() { Stop(); }

void Engine::Start() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    PublishStatsLocked();
  }
  thread_ = std::thread([this] { Loop(); });
}

void Engine::PublishStatsLocked() {
  stats_.num_waiting = scheduler_.num_waiting();
  stats_.num_running = scheduler_.num_running();
  stats_.num_free_blocks = scheduler_.block_manager().num_free_blocks();
  stats_.num_total_blocks = scheduler_.block_manager().num_total_blocks();
}

void Engine::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<RequestHandle> Engine::Submit(RequestSpec spec) {
  auto handle = std::make_shared<RequestHandle>(spec.request_id);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stop_) {
      handle->Push(ErrorChunk(absl::UnavailableError("the server is shutting down")));
      return handle;
    }
    inbox_.submitted.emplace_back(std::move(spec), handle);
  }
  wake_.notify_all();
  return handle;
}

void Engine::Abort(const std::string& request_id) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    inbox_.aborted.push_back(request_id);
  }
  wake_.notify_all();
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void Engine::Loop() {
  while (true) {
    Inbox inbox;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] {
        return stop_ || !inbox_.submitted.empty() || !inbox_.aborted.empty() ||
               scheduler_.has_unfinished();
      });
      if (stop_) break;
      std::swap(inbox, inbox_);
    }
    for (auto& [spec, handle] : inbox.submitted) Admit(std::move(spec), std::move(handle));
    for (const std::string& request_id : inbox.aborted) AbortRequest(request_id);

    const absl::Status health = executor_->health();
    if (!health.ok()) {
      FailAll(health);
    } else if (scheduler_.has_unfinished()) {
      RunOneStep();
    }

    std::lock_guard<std::mutex> lock(mutex_);
    PublishStatsLocked();
  }
  FailAll(absl::UnavailableError("the server is shutting down"));
}

void Engine::Admit(RequestSpec spec, std::shared_ptr<RequestHandle> handle) {
  if (seq_of_request_.contains(spec.request_id)) {
    handle->Push(ErrorChunk(absl::AlreadyExistsError(
        absl::StrCat("request_id \"", spec.request_id, "\" is already in flight"))));
    return;
  }
  const absl::Status health = executor_->health();
  if (!health.ok()) {
    handle->Push(ErrorChunk(health));
    return;
  }
  const uint64_t seq_id = next_seq_id_++;
  const int max_tokens = std::min<int>(
      spec.max_tokens, limits_.max_model_len - static_cast<int>(spec.prompt_token_ids.size()));
  auto sequence =
      std::make_unique<Sequence>(seq_id, spec.request_id, spec.prompt_token_ids, max_tokens);
  const absl::Status added = scheduler_.AddSequence(std::move(sequence));
  if (!added.ok()) {
    handle->Push(ErrorChunk(added));
    return;
  }
  seq_of_request_[spec.request_id] = seq_id;
  live_[seq_id] = Live{std::move(handle), std::move(spec)};
}

void Engine::AbortRequest(const std::string& request_id) {
  auto it = seq_of_request_.find(request_id);
  if (it == seq_of_request_.end()) return;
  FinishSequence(it->second, FinishReason::kAbort);
}

void Engine::FinishSequence(uint64_t seq_id, FinishReason reason) {
  auto it = live_.find(seq_id);
  if (it == live_.end()) return;
  const SequenceStatus status = reason == FinishReason::kStop ? SequenceStatus::kFinishedStopped
                                : reason == FinishReason::kLength
                                    ? SequenceStatus::kFinishedLength
                                    : SequenceStatus::kFinishedAborted;
  // Frees the blocks now; the workers hear of it with the next step (finished_seq_ids).
  scheduler_.Finish(seq_id, status).IgnoreError();
  if (reason == FinishReason::kAbort) it->second.handle->Push(FinishChunk(reason));
  seq_of_request_.erase(it->second.spec.request_id);
  live_.erase(it);
}

void Engine::RunOneStep() {
  const SchedulerOutput output = scheduler_.Schedule();
  if (output.scheduled.empty()) {
    // Nothing fits now (a finish or an abort will free room); every output must be acknowledged.
    scheduler_.OnStepDone(output, {});
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait_for(lock, std::chrono::milliseconds(5));  // do not spin while nothing can run
    return;
  }

  StepPlan plan;
  plan.step_id = next_step_id_++;
  plan.output = &output;
  plan.scheduler = &scheduler_;
  plan.finished_seq_ids = output.finished_seq_ids;
  for (const ScheduledSequence& scheduled : output.scheduled) {
    if (scheduled.is_new) {
      plan.new_sequences.emplace_back(scheduled.seq_id, live_.at(scheduled.seq_id).spec.sampling);
    }
  }

  const auto started = std::chrono::steady_clock::now();
  absl::StatusOr<StepOutcome> outcome = executor_->Execute(plan);
  const uint64_t step_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::steady_clock::now() - started)
                               .count();
  if (!outcome.ok()) {
    FailAll(outcome.status());  // finishes every sequence, so the acknowledgement skips them
    scheduler_.OnStepDone(output, {});
    return;
  }
  const std::vector<SampledTokenOut>* sampled = &outcome->tokens;
  absl::flat_hash_map<uint64_t, int32_t> tokens;
  for (const SampledTokenOut& token : *sampled) tokens[token.seq_id] = token.token_id;
  scheduler_.OnStepDone(output, tokens);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.steps;
    stats_.tokens_computed += output.num_scheduled_tokens;
    stats_.tokens_generated += sampled->size();
    stats_.num_preemptions += output.preempted_seq_ids.size();
    if (output.num_scheduled_tokens == static_cast<int>(output.scheduled.size())) {
      ++stats_.num_decode_steps;
      stats_.decode_step_ns_total += step_ns;
      stats_.decode_forward_ns_total += outcome->forward_ns;
    }
  }
  HandleSampled(*sampled);
}

void Engine::HandleSampled(const std::vector<SampledTokenOut>& tokens) {
  for (const SampledTokenOut& token : tokens) {
    auto it = live_.find(token.seq_id);
    if (it == live_.end()) continue;
    const RequestSpec& spec = it->second.spec;
    const Sequence* sequence = scheduler_.Get(token.seq_id);

    GenerationChunk chunk;
    chunk.token_ids.push_back(token.token_id);
    if (spec.sampling.num_top_logprobs >= 0) chunk.logprobs.push_back(token.logprobs);

    const auto contains = [](const std::vector<int32_t>& ids, int32_t id) {
      return std::find(ids.begin(), ids.end(), id) != ids.end();
    };
    if (contains(spec.stop_token_ids, token.token_id) ||
        (!spec.ignore_eos && contains(limits_.eos_token_ids, token.token_id))) {
      chunk.finish_reason = FinishReason::kStop;
    } else if (sequence->num_generated_tokens() >= sequence->max_tokens ||
               sequence->num_tokens() >= limits_.max_model_len) {
      chunk.finish_reason = FinishReason::kLength;
    }
    const FinishReason reason = chunk.finish_reason;
    it->second.handle->Push(std::move(chunk));
    if (reason != FinishReason::kNone) FinishSequence(token.seq_id, reason);
  }
}

void Engine::FailAll(const absl::Status& status) {
  for (auto& [seq_id, live] : live_) {
    live.handle->Push(ErrorChunk(status));
    scheduler_.Finish(seq_id, SequenceStatus::kFinishedAborted).IgnoreError();
  }
  live_.clear();
  seq_of_request_.clear();
}

}  // namespace pagedllm::coordinator
