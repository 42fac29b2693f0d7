// BeamSearch: the selection rule of transformers' generate(num_beams = W, do_sample = False),
// one step at a time, over the candidates the workers report for each running beam. Plain
// logic: the engine forks, extends and prunes the scheduler's sequences as it says.
//
// Each step (the semantics of transformers' vectorized beam search, 4.5x .. 5.x):
//   - every candidate (beam b, token t) scores score(b) + logprob(t | b), in float32; the best
//     K = max(2, 1 + number of stop tokens) * W of them are kept, best first;
//   - a candidate "hits" when t is a stop token, or when it is the max_tokens-th generated token;
//   - the next running beams are the W best kept candidates that do not hit;
//   - kept candidates among the first W that hit become finished hypotheses scoring
//     (score(b) + logprob) / generated_tokens ^ length_penalty, unless W hypotheses are already
//     finished and early_stopping is set, or no running beam can beat the finished ones any more;
//     the W best hypotheses are kept;
//   - the search ends when every kept candidate hits, when W hypotheses are finished and
//     early_stopping is set, or when the best running beam's score / generated ^ length_penalty
//     no longer beats the worst of W finished hypotheses.
// The result is the n best finished hypotheses, best first.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "coordinator/engine/request.h"

namespace pagedllm::coordinator {

struct BeamSearchConfig {
  int width = 1;         // W
  int num_returned = 1;  // n <= W
  float length_penalty = 1.0f;
  bool early_stopping = false;
  int max_tokens = 16;                  // generated tokens at most (transformers' max_new_tokens)
  std::vector<int32_t> stop_token_ids;  // EOS and the request's stop tokens (transformers' eos)

  // Candidates needed per running beam (and per step): K.
  int num_candidates() const;
};

// One candidate next token of a beam, as the workers report it (the row's top logprobs).
struct BeamCandidate {
  int32_t token_id = 0;
  float logprob = 0.0f;
};

struct BeamHypothesis {
  std::vector<int32_t> token_ids;       // generated tokens (the stop token included)
  std::vector<TokenLogprobs> logprobs;  // one per token (the chosen logprob and the row's top)
  double cumulative_logprob = 0.0;      // sum of the token logprobs
  float score = 0.0f;                   // cumulative / generated ^ length_penalty
  bool stopped = false;                 // ends with a stop token
};

class BeamSearch {
 public:
  // first_seq_id: the sequence computing the prompt (the one running beam of step 1).
  BeamSearch(BeamSearchConfig config, uint64_t first_seq_id);

  // A running beam of the next step: a copy of beam `parent_seq_id` extended by token_id.
  struct Extension {
    uint64_t parent_seq_id = 0;
    int32_t token_id = 0;
  };
  struct StepResult {
    std::vector<Extension> next;  // the next running beams, best first (empty when done)
    bool done = false;
  };
  // candidates: for every running beam (by sequence id), its top candidates, most likely first
  // (at least num_candidates(), fewer only when the vocabulary is smaller); top_logprobs: the
  // row's top logprobs to report when the client asked (num_top >= 0).
  StepResult Step(const absl::flat_hash_map<uint64_t, std::vector<BeamCandidate>>& candidates,
                  int num_top_logprobs_reported);
  // The caller made the running beams of StepResult::next: seq_ids[i] is next[i]'s sequence.
  void Commit(const std::vector<uint64_t>& seq_ids);

  // Sequence ids of the running beams.
  std::vector<uint64_t> running_seq_ids() const;
  int num_generated() const { return num_generated_; }
  // The n best finished hypotheses, best first (running beams fill in if fewer finished, as
  // when a request ends early).
  std::vector<BeamHypothesis> Results() const;

 private:
  struct Beam {
    uint64_t seq_id = 0;
    float score = 0.0f;  // sum of logprobs (float32, as transformers accumulates)
    BeamHypothesis history;
  };

  const BeamSearchConfig config_;
  std::vector<Beam> running_;
  std::vector<Beam> next_;                // selected by Step, waiting for Commit
  std::vector<BeamHypothesis> finished_;  // at most W, best first
  int num_generated_ = 0;
  bool improvable_ = true;  // transformers' is_early_stop_heuristic_unsatisfied
};

}  // namespace pagedllm::coordinator
