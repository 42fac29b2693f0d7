// EngineObserver: what the engine reports as it happens, for metrics (coordinator/metrics). The
// engine's cumulative counts and queue lengths stay in EngineStats, read when asked; this carries
// what only the moment knows: per-request timings, per-step timings, finish reasons.
//
// A request's life, as the engine sees it (one clock, std::chrono::steady_clock):
//
//   arrival      first scheduled    first token        ... next tokens ...     last token   end
//   (Submit)     (in a step sent    (its step's (finish,
//                 to the workers)    reply) abort)
//      |-- queue --|---- prefill -------|------------------ decode --------------------|
//                  |------------------------------ inference -------------------------|
//      |------------------------------------- e2e --------------------------------------------|
//
// A request's tokens are those of all its sequences (parallel samples, beams): a step that gives
// it any token is one "token step", so the first token is the first step that samples for it and
// the inter-token latency is the time between two of its token steps.
#pragma once

#include "absl/status/status.h"
#include "coordinator/engine/request.h"

namespace pagedllm::coordinator {

// One step the workers ran.
struct StepObservation {
  double seconds = 0.0;          // its round trip, as the engine saw it
  int num_scheduled_tokens = 0;  // tokens computed (prompt chunks and decodes)
  bool decode = false;           // every sequence computed one token (otherwise a prefill step)
};

// A request that ended with its choices (finished or aborted; failed ones go to
// OnRequestFailed). Durations are in seconds; -1 where the request never got that far.
struct RequestObservation {
  FinishReason reason = FinishReason::kNone;  // of the choice that ended it (kAbort if aborted)
  int num_prompt_tokens = 0;
  int num_generation_tokens = 0;  // sampled for it, all its sequences together
  int max_tokens = 0;             // as asked
  int n = 1;                      // choices asked for
  double e2e_seconds = 0.0;
  double queue_seconds = -1.0;
  double prefill_seconds = -1.0;
  double decode_seconds = -1.0;
  double inference_seconds = -1.0;
  // decode_seconds over its token steps after the first (-1 with fewer than two).
  double time_per_output_token_seconds = -1.0;
};

// Called on the engine's loop thread, in the order things happen. Implementations must be
// cheap, must not block and must not call into the Engine.
class EngineObserver {
 public:
  virtual ~EngineObserver() = default;

  virtual void OnStep(const StepObservation& step) = 0;
  // A request's first token came `seconds` after its arrival; its prompt of num_prompt_tokens
  // tokens is computed.
  virtual void OnFirstToken(double seconds, int num_prompt_tokens) = 0;
  // A request got tokens `seconds` after its previous token step.
  virtual void OnNextToken(double seconds) = 0;
  virtual void OnRequestFinished(const RequestObservation& request) = 0;
  // A request ended with an error (refused at admission, lost with a worker, failed at shutdown).
  virtual void OnRequestFailed(const absl::Status& status) = 0;
};

}  // namespace pagedllm::coordinator
