#include "coordinator/engine/engine.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/logging.h"

namespace pagedllm::coordinator {
namespace {

GenerationChunk ErrorChunk(absl::Status status) {
  GenerationChunk chunk;
  chunk.error = std::move(status);
  return chunk;
}

bool Contains(const std::vector<int32_t>& ids, int32_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

SequenceStatus StatusOf(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return SequenceStatus::kFinishedStopped;
    case FinishReason::kLength:
      return SequenceStatus::kFinishedLength;
    default:
      return SequenceStatus::kFinishedAborted;
  }
}

// The stop tokens of a beam search: EOS (unless ignored) and the request's stop tokens.
std::vector<int32_t> BeamStopTokens(const RequestSpec& spec, const ModelLimits& limits) {
  std::vector<int32_t> stops;
  if (!spec.ignore_eos) stops = limits.eos_token_ids;
  for (int32_t id : spec.stop_token_ids) {
    if (!Contains(stops, id)) stops.push_back(id);
  }
  return stops;
}

double Seconds(std::chrono::steady_clock::duration duration) {
  return std::chrono::duration<double>(duration).count();
}

uint64_t Nanoseconds(std::chrono::steady_clock::duration duration) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(duration).count();
}

}  // namespace

Engine::Engine(SchedulerConfig scheduler_config, ModelLimits limits, StepExecutor* executor,
               EngineObserver* observer)
    : limits_(std::move(limits)),
      executor_(executor),
      observer_(observer),
      scheduler_(std::make_unique<Scheduler>(scheduler_config)) {}

Engine::~Engine() { Stop(); }

void Engine::Start() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    PublishStatsLocked();
  }
  thread_ = std::thread([this] { Loop(); });
}

void Engine::PublishStatsLocked() {
  const BlockManager& blocks = scheduler_->block_manager();
  stats_.num_waiting = scheduler_->num_waiting();
  stats_.num_running = scheduler_->num_running();
  stats_.num_swapped = scheduler_->num_swapped();
  stats_.num_free_blocks = blocks.num_free_blocks();
  stats_.num_cached_free_blocks = blocks.num_cached_free_blocks();
  stats_.num_total_blocks = blocks.num_total_blocks();
  stats_.num_free_host_blocks = blocks.num_free_host_blocks();
  stats_.num_total_host_blocks = blocks.num_total_host_blocks();
  stats_.counters = replaced_counters_;
  stats_.counters.Add(scheduler_->counters());
  stats_.schedule_ns_total = loop_times_.schedule_ns;
  stats_.apply_ns_total = loop_times_.apply_ns;
  stats_.output_ns_total = loop_times_.output_ns;
  stats_.push_ns_total = loop_times_.push_ns;
}

void Engine::Stop(absl::Status why) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!stop_) stop_reason_ = std::move(why);
    stop_ = true;
  }
  wake_.notify_all();
  reconfigured_.notify_all();
  if (thread_.joinable()) thread_.join();
  courier_.Close();  // every chunk the loop sent is in its handle
}

void Engine::Reconfigure(BlockManagerConfig blocks, absl::Status why) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (stop_ || !thread_.joinable()) return;
  const uint64_t asked = ++reconfigurations_asked_;
  inbox_.reconfiguration = Reconfiguration{blocks, std::move(why)};
  wake_.notify_all();
  reconfigured_.wait(lock, [&] { return stop_ || reconfigurations_done_ >= asked; });
}

std::shared_ptr<RequestHandle> Engine::Submit(RequestSpec spec) {
  auto handle = std::make_shared<RequestHandle>(spec.request_id);
  const Clock::time_point arrival = Clock::now();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stop_) {
      handle->Push(ErrorChunk(absl::UnavailableError("the server is shutting down")));
      return handle;
    }
    inbox_.submitted.push_back({std::move(spec), handle, arrival});
  }
  wake_.notify_all();
  return handle;
}

void Engine::Abort(const std::string& key) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    inbox_.aborted.push_back(key);
  }
  wake_.notify_all();
}

void Engine::FinishChoice(const std::string& key, int choice_index) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    inbox_.finished_choices.emplace_back(key, choice_index);
  }
  wake_.notify_all();
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void Engine::Loop() {
  bool paused = false;  // the executor is unhealthy: no step runs
  while (true) {
    Inbox inbox;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      const auto has_work = [&] {
        return stop_ || !inbox_.empty() || ahead_.has_value() ||
               (scheduler_->has_unfinished() && !paused);
      };
      if (paused) {
        wake_.wait_for(lock, std::chrono::milliseconds(50), has_work);  // look at health again
      } else {
        if (!has_work()) engine_was_idle_ = true;
        wake_.wait(lock, has_work);
      }
      if (stop_) break;
      std::swap(inbox, inbox_);
    }
    if (inbox.reconfiguration.has_value()) {
      ahead_.reset();  // its workers are gone; Rebuild fails its requests with the others
      Rebuild(*inbox.reconfiguration);
      SendChunks();  // the failures are on their way before Reconfigure returns
      std::lock_guard<std::mutex> lock(mutex_);
      PublishStatsLocked();
      ++reconfigurations_done_;
      ++stats_.num_reconfigurations;
      reconfigured_.notify_all();
    }
    for (Submission& submission : inbox.submitted) Admit(std::move(submission));
    for (const std::string& request_id : inbox.aborted) AbortRequest(request_id);
    for (const auto& [request_id, choice] : inbox.finished_choices) {
      FinishChoiceNow(request_id, choice);
    }
    SendChunks();  // refusals, aborts, finished choices

    const absl::Status health = executor_->health();
    paused = !health.ok();
    if (paused) {
      if (ahead_.has_value()) FinishAhead();
      FailStarted(health);
    } else if (scheduler_->has_unfinished() || ahead_.has_value()) {
      RunOneStep();
    }
    SendChunks();  // failures (a step's own chunks went as soon as it was handled)

    std::lock_guard<std::mutex> lock(mutex_);
    PublishStatsLocked();
  }
  absl::Status why;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    why = stop_reason_;
  }
  FailAll(why);
  SendChunks();
}

void Engine::Admit(Submission submission) {
  RequestSpec& spec = submission.spec;
  std::shared_ptr<RequestHandle>& handle = submission.handle;
  const auto fail = [&](absl::Status status) {
    NoteFailed(status);
    Emit(handle, ErrorChunk(std::move(status)));
  };
  if (spec.key.empty()) {  // a caller bug: with the request_id instead, calls could collide
    fail(absl::InternalError(
        absl::StrCat("request \"", spec.request_id, "\" was submitted without its call's key")));
    return;
  }
  if (group_of_request_.contains(spec.key)) {
    fail(absl::AlreadyExistsError(
        absl::StrCat("request \"", spec.request_id, "\" is already in flight")));
    return;
  }
  const int max_tokens = std::min<int>(
      spec.max_tokens, limits_.max_model_len - static_cast<int>(spec.prompt_token_ids.size()));
  GroupSpec group;
  group.request_id = spec.request_id;
  group.prompt_token_ids = spec.prompt_token_ids;
  group.max_tokens = max_tokens;
  group.sampling = spec.sampling;
  group.num_samples = spec.best_of;
  group.beam_search = spec.use_beam_search;
  BeamSearchConfig beam;
  if (spec.use_beam_search) {
    beam.width = spec.best_of;
    beam.num_returned = spec.n;
    beam.length_penalty = spec.length_penalty;
    beam.early_stopping = spec.early_stopping;
    beam.max_tokens = max_tokens;
    beam.stop_token_ids = BeamStopTokens(spec, limits_);
    group.sampling.temperature = 0.0f;
    group.sampling.num_top_logprobs = std::min(
        kMaxSequenceTopLogprobs, std::max(beam.num_candidates(), spec.sampling.num_top_logprobs));
    if (beam.num_candidates() > kMaxSequenceTopLogprobs) {
      fail(absl::InvalidArgumentError(
          absl::StrCat("beam search with width ", beam.width, " and ", beam.stop_token_ids.size(),
                       " stop tokens needs ", beam.num_candidates(),
                       " candidates per beam, at most ", kMaxSequenceTopLogprobs, " are served")));
      return;
    }
  } else if (spec.wants_cumulative_logprob()) {
    group.sampling.num_top_logprobs = std::max(0, spec.sampling.num_top_logprobs);
  }
  absl::StatusOr<uint64_t> group_id = scheduler_->AddGroup(std::move(group));
  if (!group_id.ok()) {
    fail(group_id.status());
    return;
  }
  Live live;
  live.handle = std::move(handle);
  live.group_id = *group_id;
  live.timeline.arrival = submission.arrival;
  if (spec.use_beam_search) {
    live.beam =
        std::make_unique<BeamSearch>(beam, scheduler_->GetGroup(*group_id)->seqs.front()->seq_id);
  } else {
    live.samples.resize(spec.best_of);
    live.num_open = spec.best_of;
  }
  live.spec = std::move(spec);
  group_of_request_[live.spec.key] = *group_id;
  live_.emplace(*group_id, std::move(live));
}

void Engine::AbortRequest(const std::string& key) {
  auto it = group_of_request_.find(key);
  if (it == group_of_request_.end()) return;
  const uint64_t group_id = it->second;
  // Frees the blocks now; the workers hear of it with the next step (finished_seq_ids).
  scheduler_->FinishGroup(group_id, SequenceStatus::kFinishedAborted).IgnoreError();
  GenerationChunk chunk;
  chunk.finish_reason = FinishReason::kAbort;
  chunk.request_done = true;
  NoteFinished(live_.at(group_id), FinishReason::kAbort);
  Emit(live_.at(group_id).handle, std::move(chunk));
  live_.erase(group_id);
  group_of_request_.erase(it);
}

void Engine::FinishChoiceNow(const std::string& key, int choice_index) {
  auto it = group_of_request_.find(key);
  if (it == group_of_request_.end()) return;
  Live& live = live_.at(it->second);
  if (!live.spec.streams() || choice_index < 0 ||
      choice_index >= static_cast<int>(live.samples.size()) ||
      live.samples[choice_index].finish_reason != FinishReason::kNone) {
    return;
  }
  const SequenceGroup* group = scheduler_->GetGroup(live.group_id);
  for (const Sequence* seq : group->seqs) {
    if (seq->sample_index != choice_index) continue;
    CloseSample(live, seq->seq_id, choice_index, FinishReason::kStop);
    return;
  }
}

FinishReason Engine::FinishOf(const RequestSpec& spec, int32_t token_id,
                              const Sequence& seq) const {
  if (Contains(spec.stop_token_ids, token_id) ||
      (!spec.ignore_eos && Contains(limits_.eos_token_ids, token_id))) {
    return FinishReason::kStop;
  }
  // The group's max_tokens was cut at admission to what fits max_model_len.
  if (seq.num_generated_tokens() >= seq.group->max_tokens) return FinishReason::kLength;
  return FinishReason::kNone;
}

void Engine::RunOneStep() {
  const Clock::time_point schedule_started = Clock::now();
  SchedulerOutput output = scheduler_->Schedule();
  loop_times_.schedule_ns += Nanoseconds(Clock::now() - schedule_started);
  for (const auto& [group_id, status] : output.failed_groups) {
    auto it = live_.find(group_id);
    if (it == live_.end()) continue;
    NoteFailed(status);
    Emit(it->second.handle, ErrorChunk(status));
    group_of_request_.erase(it->second.spec.key);
    live_.erase(it);
  }
  if (output.step_id == 0) {
    // Nothing fits now (a finish or an abort will free room); every output must be acknowledged.
    scheduler_->OnStepDone(output, {});
    if (ahead_.has_value()) {
      FinishAhead();
      return;
    }
    if (!output.failed_groups.empty()) return;
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait_for(lock, std::chrono::milliseconds(5));  // do not spin while nothing can run
    return;
  }

  const Clock::time_point sent = Clock::now();
  NoteScheduled(output, sent);
  const absl::Status sent_status = executor_->Send(output);  // a failure comes from Receive too
  // This step is on its way: now the tokens of the one before it. When that failed, the workers
  // did (the executor's failures last until they are replaced), and this step fails too.
  if (ahead_.has_value() && !FinishAhead()) {
    FinishStep(output, sent, executor_->Receive(output.step_id));
    return;
  }
  if (sent_status.ok() && scheduler_->config().async_scheduling &&
      scheduler_->CanRunAhead(output)) {
    scheduler_->RunAhead(output);
    ahead_ = Ahead{std::move(output), sent};
    return;
  }
  FinishStep(output, sent, executor_->Receive(output.step_id));
}

bool Engine::FinishAhead() {
  Ahead ahead = std::move(*ahead_);
  ahead_.reset();
  return FinishStep(ahead.output, ahead.sent, executor_->Receive(ahead.output.step_id));
}

bool Engine::FinishStep(const SchedulerOutput& output, Clock::time_point sent,
                        absl::StatusOr<StepOutcome> outcome) {
  const Clock::time_point ended = Clock::now();
  // The step's own time: from when it was sent, or, sent ahead, from the outcome before it.
  const Clock::time_point started = std::max(sent, last_outcome_);
  last_outcome_ = ended;
  const uint64_t step_ns = Nanoseconds(ended - started);
  if (!outcome.ok()) {
    // Every sequence of the step is started, so it is finished here and the acknowledgement
    // skips it; requests still waiting stay for the workers that replace these.
    FailStarted(outcome.status());
    scheduler_->OnStepDone(output, {});
    return false;
  }
  // Each sampled token's sequence, looked up once (null: finished while the step ran). Beam
  // searches choose their tokens themselves, after the step.
  std::vector<Sequence*> sequences;
  sequences.reserve(outcome->tokens.size());
  absl::flat_hash_map<uint64_t, int32_t> tokens;
  tokens.reserve(outcome->tokens.size());
  for (const SampledTokenOut& token : outcome->tokens) {
    sequences.push_back(scheduler_->GetSequence(token.seq_id));
    if (sequences.back() != nullptr && !sequences.back()->group->beam_search) {
      tokens[token.seq_id] = token.token_id;
    }
  }
  const bool was_ahead = scheduler_->step_ahead() == output.step_id;
  scheduler_->OnStepDone(output, tokens);  // forks may add sequences; none goes away
  const bool decode = output.num_scheduled_tokens == static_cast<int>(output.scheduled.size());
  if (observer_ != nullptr) {
    observer_->OnStep({Seconds(ended - started), output.num_scheduled_tokens, decode});
  }
  const Clock::time_point applied = Clock::now();
  loop_times_.apply_ns += Nanoseconds(applied - ended);
  const int generated = HandleSampled(outcome->tokens, sequences, output.step_id, ended);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.steps;
    stats_.num_steps_ahead += was_ahead;
    stats_.tokens_computed += output.num_scheduled_tokens;
    stats_.tokens_generated += generated;
    if (decode) {
      ++stats_.num_decode_steps;
      stats_.decode_step_ns_total += step_ns;
      stats_.decode_forward_ns_total += outcome->forward_ns;
    } else {
      ++stats_.num_prefill_steps;
      stats_.prefill_step_ns_total += step_ns;
      stats_.prefill_forward_ns_total += outcome->forward_ns;
    }
    if (outcome->device_busy_ns >= 0) stats_.device_busy_ns_total += outcome->device_busy_ns;
    if (outcome->device_idle_before_ns >= 0 && !engine_was_idle_) {
      stats_.device_idle_ns_total += outcome->device_idle_before_ns;
    }
  }
  engine_was_idle_ = false;
  const Clock::time_point handled = Clock::now();
  loop_times_.output_ns += Nanoseconds(handled - applied);
  SendChunks();
  loop_times_.push_ns += Nanoseconds(Clock::now() - handled);
  return true;
}

void Engine::Emit(const std::shared_ptr<RequestHandle>& handle, GenerationChunk chunk) {
  outbox_.emplace_back(handle, std::move(chunk));
}

void Engine::SendChunks() { courier_.Send(&outbox_); }

int Engine::HandleSampled(const std::vector<SampledTokenOut>& tokens,
                          const std::vector<Sequence*>& sequences, uint64_t step_id,
                          Clock::time_point token_time) {
  absl::flat_hash_map<uint64_t, absl::flat_hash_map<uint64_t, const SampledTokenOut*>> beams;
  int generated = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const SampledTokenOut& token = tokens[i];
    const Sequence* seq = sequences[i];
    if (seq == nullptr) continue;  // finished while the step ran
    auto it = live_.find(seq->group->group_id);
    if (it == live_.end()) continue;
    Live& live = it->second;
    // A step sent ahead computes one token past a sample's stop; it is dropped, not counted.
    if (live.beam == nullptr &&
        live.samples[seq->sample_index].finish_reason != FinishReason::kNone) {
      continue;
    }
    ++generated;
    if (observer_ != nullptr) NoteToken(live, step_id, token_time);
    if (live.beam != nullptr) {
      beams[seq->group->group_id][token.seq_id] = &token;
    } else {
      HandleSample(live, *seq, token);
    }
  }
  for (const auto& [group_id, reports] : beams) {
    auto it = live_.find(group_id);
    const SequenceGroup* group = scheduler_->GetGroup(group_id);
    if (it == live_.end() || group == nullptr) continue;
    // Beams run together (the scheduler schedules them all or none).
    PAGEDLLM_CHECK(reports.size() == group->seqs.size(), "beam search group ", group_id, ": ",
                   reports.size(), " of ", group->seqs.size(), " beams reported");
    StepBeamSearch(it->second, reports);
  }
  return generated;
}

void Engine::HandleSample(Live& live, const Sequence& seq, const SampledTokenOut& token) {
  const RequestSpec& spec = live.spec;
  const int index = seq.sample_index;
  Choice& choice = live.samples[index];
  const bool with_logprobs = spec.wants_cumulative_logprob();
  choice.token_ids.push_back(token.token_id);
  choice.cumulative_logprob += token.logprobs.logprob;
  if (with_logprobs) choice.logprobs.push_back(token.logprobs);
  const FinishReason reason = FinishOf(spec, token.token_id, seq);
  if (spec.streams()) {
    GenerationChunk chunk;
    chunk.choice_index = index;
    chunk.token_ids.push_back(token.token_id);
    if (with_logprobs) chunk.logprobs.push_back(token.logprobs);
    chunk.finish_reason = reason;
    chunk.request_done = reason != FinishReason::kNone && live.num_open == 1;
    Emit(live.handle, std::move(chunk));
  }
  if (reason != FinishReason::kNone) CloseSample(live, seq.seq_id, index, reason);
}

void Engine::CloseSample(Live& live, uint64_t seq_id, int sample_index, FinishReason reason) {
  live.samples[sample_index].finish_reason = reason;
  scheduler_->FinishSequence(seq_id, StatusOf(reason)).IgnoreError();
  if (--live.num_open > 0) return;
  if (live.spec.streams()) {
    NoteFinished(live, reason);
    // The request's last chunk went out with the token (or the frontend ended the choice).
    GenerationChunk done;
    done.choice_index = sample_index;
    done.finish_reason = reason;
    done.request_done = true;
    Emit(live.handle, std::move(done));  // dropped when the last chunk already said done
    group_of_request_.erase(live.spec.key);
    live_.erase(live.group_id);
    return;
  }
  CompleteRequest(live.group_id);
}

void Engine::StepBeamSearch(Live& live,
                            const absl::flat_hash_map<uint64_t, const SampledTokenOut*>& reports) {
  absl::flat_hash_map<uint64_t, std::vector<BeamCandidate>> candidates;
  for (const auto& [seq_id, token] : reports) {
    std::vector<BeamCandidate>& row = candidates[seq_id];
    for (const auto& [id, logprob] : token->logprobs.top) row.push_back({id, logprob});
  }
  const BeamSearch::StepResult result =
      live.beam->Step(candidates, live.spec.sampling.num_top_logprobs);
  if (result.done) {
    CompleteRequest(live.group_id);
    return;
  }
  // Forks first (a child copies its parent before the parent grows), then the new tokens, then
  // the beams nobody chose are pruned.
  std::vector<uint64_t> ids;
  absl::flat_hash_set<uint64_t> kept;
  for (const BeamSearch::Extension& extension : result.next) {
    ids.push_back(kept.insert(extension.parent_seq_id).second
                      ? extension.parent_seq_id
                      : scheduler_->ForkSequence(extension.parent_seq_id));
  }
  for (size_t i = 0; i < ids.size(); ++i) scheduler_->AppendToken(ids[i], result.next[i].token_id);
  std::vector<uint64_t> pruned;
  for (const Sequence* seq : scheduler_->GetGroup(live.group_id)->seqs) {
    if (std::find(ids.begin(), ids.end(), seq->seq_id) == ids.end()) pruned.push_back(seq->seq_id);
  }
  for (uint64_t seq_id : pruned) {
    scheduler_->FinishSequence(seq_id, SequenceStatus::kFinishedAborted).IgnoreError();
  }
  live.beam->Commit(ids);
}

void Engine::CompleteRequest(uint64_t group_id) {
  Live& live = live_.at(group_id);
  const RequestSpec& spec = live.spec;
  std::vector<GenerationChunk> chunks;
  if (live.beam != nullptr) {
    for (BeamHypothesis& h : live.beam->Results()) {
      GenerationChunk chunk;
      chunk.token_ids = std::move(h.token_ids);
      chunk.logprobs = std::move(h.logprobs);
      chunk.finish_reason = h.stopped ? FinishReason::kStop : FinishReason::kLength;
      chunks.push_back(std::move(chunk));
    }
  } else {
    std::vector<int> order(live.samples.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      return live.samples[a].cumulative_logprob > live.samples[b].cumulative_logprob;
    });
    for (int i = 0; i < spec.n && i < static_cast<int>(order.size()); ++i) {
      Choice& choice = live.samples[order[i]];
      GenerationChunk chunk;
      chunk.token_ids = std::move(choice.token_ids);
      chunk.logprobs = std::move(choice.logprobs);
      chunk.finish_reason = choice.finish_reason;
      chunks.push_back(std::move(chunk));
    }
  }
  // The best choice's reason stands for the request's.
  NoteFinished(live, chunks.empty() ? FinishReason::kLength : chunks.front().finish_reason);
  for (size_t i = 0; i < chunks.size(); ++i) {
    chunks[i].choice_index = static_cast<int>(i);
    chunks[i].request_done = i + 1 == chunks.size();
    Emit(live.handle, std::move(chunks[i]));
  }
  scheduler_->FinishGroup(group_id, SequenceStatus::kFinishedLength).IgnoreError();
  group_of_request_.erase(spec.key);
  live_.erase(group_id);
}

void Engine::FailAll(const absl::Status& status) {
  for (auto& [group_id, live] : live_) {
    NoteFailed(status);
    Emit(live.handle, ErrorChunk(status));
    scheduler_->FinishGroup(group_id, SequenceStatus::kFinishedAborted).IgnoreError();
  }
  live_.clear();
  group_of_request_.clear();
}

void Engine::FailStarted(const absl::Status& status) {
  std::vector<uint64_t> started;
  for (const auto& [group_id, live] : live_) {
    const SequenceGroup* group = scheduler_->GetGroup(group_id);
    bool known =
        group == nullptr || group->status != GroupStatus::kWaiting || group->num_preemptions > 0;
    for (size_t i = 0; group != nullptr && !known && i < group->seqs.size(); ++i) {
      known = group->seqs[i]->known_to_workers;
    }
    if (known) started.push_back(group_id);
  }
  for (uint64_t group_id : started) {
    Live& live = live_.at(group_id);
    NoteFailed(status);
    Emit(live.handle, ErrorChunk(status));
    scheduler_->FinishGroup(group_id, SequenceStatus::kFinishedAborted).IgnoreError();
    group_of_request_.erase(live.spec.key);
    live_.erase(group_id);
  }
}

void Engine::Rebuild(const Reconfiguration& reconfiguration) {
  FailStarted(reconfiguration.why);
  // What is left never reached the workers: queue it again, in arrival order (group ids grow
  // with arrival).
  std::vector<uint64_t> order;
  for (const auto& [group_id, live] : live_) order.push_back(group_id);
  std::sort(order.begin(), order.end());
  std::vector<Submission> kept;
  for (uint64_t group_id : order) {
    Live& live = live_.at(group_id);
    kept.push_back({std::move(live.spec), std::move(live.handle), live.timeline.arrival});
  }
  live_.clear();
  group_of_request_.clear();
  replaced_counters_.Add(scheduler_->counters());
  SchedulerConfig config = scheduler_->config();
  config.blocks = reconfiguration.blocks;
  scheduler_ = std::make_unique<Scheduler>(config);
  PAGEDLLM_LOG(INFO) << "engine: new workers with " << config.blocks.num_blocks << " KV blocks; "
                     << kept.size() << " waiting requests queued again";
  for (Submission& submission : kept) Admit(std::move(submission));
}

void Engine::NoteScheduled(const SchedulerOutput& step, Clock::time_point sent) {
  if (observer_ == nullptr) return;
  for (const NewSequence& fresh : step.new_sequences) {
    const Sequence* seq = scheduler_->GetSequence(fresh.seq_id);
    if (seq == nullptr) continue;
    auto it = live_.find(seq->group->group_id);
    if (it == live_.end() || it->second.timeline.scheduled) continue;
    it->second.timeline.scheduled = true;
    it->second.timeline.first_scheduled = sent;
  }
}

void Engine::NoteToken(Live& live, uint64_t step_id, Clock::time_point token_time) {
  Timeline& timeline = live.timeline;
  ++timeline.num_generated_tokens;
  if (timeline.num_token_steps > 0 && timeline.last_token_step == step_id) return;  // counted
  timeline.last_token_step = step_id;
  if (timeline.num_token_steps++ == 0) {
    timeline.first_token = token_time;
    observer_->OnFirstToken(Seconds(token_time - timeline.arrival),
                            static_cast<int>(live.spec.prompt_token_ids.size()));
  } else {
    observer_->OnNextToken(Seconds(token_time - timeline.last_token));
  }
  timeline.last_token = token_time;
}

void Engine::NoteFinished(const Live& live, FinishReason reason) {
  if (observer_ == nullptr) return;
  const Timeline& timeline = live.timeline;
  RequestObservation request;
  request.reason = reason;
  request.num_prompt_tokens = static_cast<int>(live.spec.prompt_token_ids.size());
  request.num_generation_tokens = timeline.num_generated_tokens;
  request.max_tokens = live.spec.max_tokens;
  request.n = live.spec.n;
  request.e2e_seconds = Seconds(Clock::now() - timeline.arrival);
  if (timeline.scheduled) {
    request.queue_seconds = Seconds(timeline.first_scheduled - timeline.arrival);
    if (timeline.num_token_steps > 0) {
      request.prefill_seconds = Seconds(timeline.first_token - timeline.first_scheduled);
      request.decode_seconds = Seconds(timeline.last_token - timeline.first_token);
      request.inference_seconds = Seconds(timeline.last_token - timeline.first_scheduled);
    }
    if (timeline.num_token_steps > 1) {
      request.time_per_output_token_seconds =
          request.decode_seconds / (timeline.num_token_steps - 1);
    }
  }
  observer_->OnRequestFinished(request);
}

void Engine::NoteFailed(const absl::Status& status) {
  if (observer_ != nullptr) observer_->OnRequestFailed(status);
}

}  // namespace pagedllm::coordinator
