// Engine: the coordinator's step loop. One thread owns the scheduler and the block manager:
// each iteration it admits new requests, applies aborts, asks the scheduler for a step, has the
// workers run it (StepExecutor) and turns the sampled tokens into request output: per choice,
// finishing sequences on EOS, stop tokens, max_tokens and max_model_len; ranking best_of
// samples; and driving beam searches (fork, extend, prune after every step).
//
// Submit, Abort and FinishChoice are thread safe and only queue work for the loop; all request
// outcomes, errors included, arrive through the RequestHandle. The loop hands its chunks to a
// ChunkCourier, whose thread pushes them (and so runs the handles' listeners) while the loop goes
// on to the next step; each handle gets its chunks in order.
//
// Async scheduling (SchedulerConfig::async_scheduling): where the scheduler allows it
// (Scheduler::CanRunAhead), the loop sends step t + 1 before it has step t's tokens, so the
// workers find it waiting when t ends; t's tokens then fill the placeholders t + 1 was sent with
// (the workers fill theirs from what they sampled). Stop checks run one step late: a sequence
// that stopped at t computes one more token, which is dropped.
//
// While the executor is unhealthy (a worker lost or hung) no step runs: the requests the workers
// had started fail with the executor's status at once; the others wait. Reconfigure() then takes
// the replacement workers (a supervised restart): a new scheduler for their KV cache, and the
// waiting requests queued again in their order.
//
// An EngineObserver, when given, hears of every step, first and next token, finished and failed
// request as it happens (for metrics), on the loop thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "coordinator/engine/beam_search.h"
#include "coordinator/engine/chunk_courier.h"
#include "coordinator/engine/engine_observer.h"
#include "coordinator/engine/request.h"
#include "coordinator/engine/request_handle.h"
#include "coordinator/engine/step_executor.h"
#include "coordinator/scheduler/scheduler.h"

namespace pagedllm::coordinator {

struct ModelLimits {
  int vocab_size = 0;
  int max_model_len = 0;
  std::vector<int32_t> eos_token_ids;
};

struct EngineStats {
  uint64_t steps = 0;
  uint64_t tokens_computed = 0;
  uint64_t tokens_generated = 0;
  int num_waiting = 0;
  int num_running = 0;
  int num_swapped = 0;
  int num_free_blocks = 0;
  int num_cached_free_blocks = 0;
  int num_total_blocks = 0;
  int num_free_host_blocks = 0;
  int num_total_host_blocks = 0;
  SchedulerCounters counters;            // preemptions, swaps, prefix-cache queries and hits
  uint64_t num_decode_steps = 0;         // steps where every sequence computed one token
  uint64_t decode_step_ns_total = 0;     // their round trip, as the engine saw it
  uint64_t decode_forward_ns_total = 0;  // their time on rank 0
  uint64_t num_prefill_steps = 0;        // the other steps
  uint64_t prefill_step_ns_total = 0;
  uint64_t prefill_forward_ns_total = 0;
  uint64_t num_reconfigurations = 0;  // worker restarts taken (Reconfigure)
  // Async scheduling: steps sent before the outcome of the step before them had come back.
  uint64_t num_steps_ahead = 0;
  // Rank 0's device clock over the steps: its work on them, and its idle time between
  // consecutive steps (not counting the first step after the engine had nothing to do).
  uint64_t device_busy_ns_total = 0;
  uint64_t device_idle_ns_total = 0;
  // The loop thread's own time on the steps (all of them), besides the executor's: the
  // coordinator's CPU cost per step that the workers wait for (tools/engine_step_bench).
  uint64_t schedule_ns_total = 0;  // Scheduler::Schedule
  uint64_t apply_ns_total = 0;     // the sampled tokens into the scheduler (OnStepDone)
  uint64_t output_ns_total = 0;  // stop checks, choices, chunks, beam search (HandleSampled), stats
  uint64_t push_ns_total = 0;    // handing the chunks to the courier (ChunkCourier::Send)
};

class Engine {
 public:
  // observer: null for none; not owned, and must outlive the loop (Stop or the destructor).
  Engine(SchedulerConfig scheduler_config, ModelLimits limits, StepExecutor* executor,
         EngineObserver* observer = nullptr);
  ~Engine();  // stops the loop
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  void Start();
  // Finishes nothing new: fails every request still in flight with `why` and joins.
  void Stop(absl::Status why = absl::UnavailableError("the server is shutting down"));

  // The workers were replaced: fails the requests the old ones had started with `why`, and
  // rebuilds the scheduler for the new workers' KV cache (`blocks`); requests that had not
  // started are queued again, oldest first. Returns once the loop has done it (or stopped).
  void Reconfigure(BlockManagerConfig blocks, absl::Status why);

  // Queues a request; its outcome arrives through the returned handle.
  std::shared_ptr<RequestHandle> Submit(RequestSpec spec);
  // Aborts the request with this key (RequestSpec::key; if still alive) and frees its blocks
  // before the next step.
  void Abort(const std::string& key);
  // Ends one streaming choice of a request as stopped (a stop string matched in its text) and
  // frees its blocks; nothing more comes for it.
  void FinishChoice(const std::string& key, int choice_index);

  EngineStats stats() const;
  const ModelLimits& limits() const { return limits_; }

 private:
  struct Choice {
    std::vector<int32_t> token_ids;
    std::vector<TokenLogprobs> logprobs;
    double cumulative_logprob = 0.0;
    FinishReason finish_reason = FinishReason::kNone;
  };
  using Clock = std::chrono::steady_clock;
  // When things happened to a request, for the observer (see engine_observer.h).
  struct Timeline {
    Clock::time_point arrival;  // Submit
    Clock::time_point first_scheduled;
    Clock::time_point first_token;
    Clock::time_point last_token;
    bool scheduled = false;        // first_scheduled is set
    int num_token_steps = 0;       // steps that sampled for it (first_token is set from 1 on)
    uint64_t last_token_step = 0;  // step id of the latest of them
    int num_generated_tokens = 0;
  };
  struct Live {
    std::shared_ptr<RequestHandle> handle;
    RequestSpec spec;
    uint64_t group_id = 0;
    std::vector<Choice> samples;  // [best_of] (not beam search)
    int num_open = 0;             // samples not finished
    std::unique_ptr<BeamSearch> beam;
    Timeline timeline;  // kept only with an observer (arrival always)
  };
  struct Submission {
    RequestSpec spec;
    std::shared_ptr<RequestHandle> handle;
    Clock::time_point arrival;
  };
  struct Reconfiguration {
    BlockManagerConfig blocks;
    absl::Status why;
  };
  struct Inbox {
    std::vector<Submission> submitted;
    std::vector<std::string> aborted;
    std::vector<std::pair<std::string, int>> finished_choices;
    std::optional<Reconfiguration> reconfiguration;
    bool empty() const {
      return submitted.empty() && aborted.empty() && finished_choices.empty() &&
             !reconfiguration.has_value();
    }
  };

  void Loop();
  void Admit(Submission submission);
  void AbortRequest(const std::string& key);
  void FinishChoiceNow(const std::string& key, int choice_index);
  void RunOneStep();
  // Receives the outcome of the step that ran ahead and handles it; false when it failed.
  bool FinishAhead();
  // Handles a step's outcome (sent at `sent`); false when it failed.
  bool FinishStep(const SchedulerOutput& output, Clock::time_point sent,
                  absl::StatusOr<StepOutcome> outcome);
  // tokens[i] was sampled for sequences[i] (null when it finished while the step ran).
  // They came back at token_time from step step_id. Returns how many were the requests' (not
  // the ones past a stop, computed by a step sent ahead).
  int HandleSampled(const std::vector<SampledTokenOut>& tokens,
                    const std::vector<Sequence*>& sequences, uint64_t step_id,
                    Clock::time_point token_time);
  void HandleSample(Live& live, const Sequence& seq, const SampledTokenOut& token);
  void StepBeamSearch(Live& live,
                      const absl::flat_hash_map<uint64_t, const SampledTokenOut*>& reports);
  // Every chunk the loop makes for a request goes out through here: it waits in outbox_ until
  // SendChunks hands the outbox to the courier (after the inbox, after each step).
  void Emit(const std::shared_ptr<RequestHandle>& handle, GenerationChunk chunk);
  void SendChunks();
  // The sample ended: frees its sequence, and completes the request when it was the last.
  void CloseSample(Live& live, uint64_t seq_id, int sample_index, FinishReason reason);
  // Sends buffered choices (best_of > n, beam search) and forgets the request.
  void CompleteRequest(uint64_t group_id);
  FinishReason FinishOf(const RequestSpec& spec, int32_t token_id, const Sequence& seq) const;
  void FailAll(const absl::Status& status);
  // Fails the requests the workers know of (scheduled at least once); the others stay queued.
  void FailStarted(const absl::Status& status);
  void Rebuild(const Reconfiguration& reconfiguration);
  void PublishStatsLocked();  // requires mutex_; reads the scheduler (loop thread or before it)
  // Observer hooks (no-ops without one). The requests whose sequences the workers see for the
  // first time in `step` (sent at `sent`) leave the queue.
  void NoteScheduled(const SchedulerOutput& step, Clock::time_point sent);
  // The step step_id sampled a token for the request at token_time.
  void NoteToken(Live& live, uint64_t step_id, Clock::time_point token_time);
  void NoteFinished(const Live& live, FinishReason reason);
  void NoteFailed(const absl::Status& status);

  const ModelLimits limits_;
  StepExecutor* const executor_;
  EngineObserver* const observer_;  // may be null

  // Guarded by mutex_: the inbox, stop flag and the published stats.
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable reconfigured_;
  Inbox inbox_;
  bool stop_ = false;
  absl::Status stop_reason_;
  uint64_t reconfigurations_asked_ = 0;
  uint64_t reconfigurations_done_ = 0;
  EngineStats stats_;

  // Owned by the loop thread.
  std::unique_ptr<Scheduler> scheduler_;      // replaced by Reconfigure
  SchedulerCounters replaced_counters_;       // of the schedulers Reconfigure replaced
  absl::flat_hash_map<uint64_t, Live> live_;  // by group id
  absl::flat_hash_map<std::string, uint64_t> group_of_request_;  // RequestSpec::key -> group id
  struct LoopTimes {  // EngineStats' *_ns_total, added up here and published with the rest
    uint64_t schedule_ns = 0, apply_ns = 0, output_ns = 0, push_ns = 0;
  };
  LoopTimes loop_times_;
  // Async scheduling: the step sent and run ahead in the scheduler (Scheduler::RunAhead) whose
  // outcome is handled after the next step is sent.
  struct Ahead {
    SchedulerOutput output;
    Clock::time_point sent;
  };
  std::optional<Ahead> ahead_;
  Clock::time_point last_outcome_;  // when the latest step's outcome came back
  bool engine_was_idle_ = true;     // it waited for work since the latest step
  // The chunks made since the last SendChunks, in order; the courier is closed by Stop, once the
  // loop has ended.
  ChunkCourier::Batch outbox_;
  ChunkCourier courier_;
  std::thread thread_;
};

}  // namespace pagedllm::coordinator
