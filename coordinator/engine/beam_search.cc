#include "coordinator/engine/beam_search.h"

#include <algorithm>
#include <cmath>

#include "common/check.h"

namespace pagedllm::coordinator {

int BeamSearchConfig::num_candidates() const {
  return std::max(2, 1 + static_cast<int>(stop_token_ids.size())) * width;
}

BeamSearch::BeamSearch(BeamSearchConfig config, uint64_t first_seq_id)
    : config_(std::move(config)) {
  PAGEDLLM_CHECK(config_.width >= 1 && config_.num_returned >= 1 &&
                     config_.num_returned <= config_.width && config_.max_tokens >= 1,
                 "beam search width ", config_.width, ", n ", config_.num_returned, ", max_tokens ",
                 config_.max_tokens);
  Beam first;
  first.seq_id = first_seq_id;
  running_.push_back(std::move(first));
}

namespace {

float Penalized(float score, int num_generated, float length_penalty) {
  return score / static_cast<float>(std::pow(static_cast<double>(num_generated),
                                             static_cast<double>(length_penalty)));
}

}  // namespace

BeamSearch::StepResult BeamSearch::Step(
    const absl::flat_hash_map<uint64_t, std::vector<BeamCandidate>>& candidates,
    int num_top_logprobs_reported) {
  struct Kept {
    float total;
    int beam;
    BeamCandidate candidate;
    const std::vector<BeamCandidate>* row;
  };
  const int k = config_.num_candidates();
  std::vector<Kept> all;
  for (int b = 0; b < static_cast<int>(running_.size()); ++b) {
    auto it = candidates.find(running_[b].seq_id);
    PAGEDLLM_CHECK(it != candidates.end(), "no candidates for beam ", running_[b].seq_id);
    const std::vector<BeamCandidate>& row = it->second;
    for (int j = 0; j < std::min<int>(k, row.size()); ++j) {
      all.push_back({running_[b].score + row[j].logprob, b, row[j], &row});
    }
  }
  // Best first; ties to the earlier beam, then the lower token id.
  std::stable_sort(all.begin(), all.end(), [](const Kept& a, const Kept& b) {
    if (a.total != b.total) return a.total > b.total;
    if (a.beam != b.beam) return a.beam < b.beam;
    return a.candidate.token_id < b.candidate.token_id;
  });
  if (static_cast<int>(all.size()) > k) all.resize(k);

  const int generated = num_generated_ + 1;
  const auto is_stop = [this](int32_t token) {
    return std::find(config_.stop_token_ids.begin(), config_.stop_token_ids.end(), token) !=
           config_.stop_token_ids.end();
  };
  const auto extend = [&](const Kept& kept) {
    BeamHypothesis h = running_[kept.beam].history;
    h.token_ids.push_back(kept.candidate.token_id);
    TokenLogprobs logprobs;
    logprobs.logprob = kept.candidate.logprob;
    for (int j = 0; j < std::min<int>(num_top_logprobs_reported, kept.row->size()); ++j) {
      logprobs.top.emplace_back((*kept.row)[j].token_id, (*kept.row)[j].logprob);
    }
    h.logprobs.push_back(std::move(logprobs));
    h.cumulative_logprob += kept.candidate.logprob;
    return h;
  };

  std::vector<char> hits(all.size());
  bool all_hit = true;
  for (size_t j = 0; j < all.size(); ++j) {
    hits[j] = generated >= config_.max_tokens || is_stop(all[j].candidate.token_id);
    all_hit = all_hit && hits[j];
  }

  // Finished hypotheses from the first W kept candidates that hit.
  const bool full = static_cast<int>(finished_.size()) == config_.width;
  if (improvable_ && !(full && config_.early_stopping)) {
    for (size_t j = 0; j < std::min<size_t>(config_.width, all.size()); ++j) {
      if (!hits[j]) continue;
      BeamHypothesis h = extend(all[j]);
      h.score = Penalized(all[j].total, generated, config_.length_penalty);
      h.stopped = is_stop(all[j].candidate.token_id);
      finished_.push_back(std::move(h));
    }
    // Earlier hypotheses win ties, as they come first in transformers' merge.
    std::stable_sort(
        finished_.begin(), finished_.end(),
        [](const BeamHypothesis& a, const BeamHypothesis& b) { return a.score > b.score; });
    if (static_cast<int>(finished_.size()) > config_.width) finished_.resize(config_.width);
  }

  // The next running beams: the W best kept candidates that do not hit.
  next_.clear();
  StepResult result;
  for (size_t j = 0; j < all.size() && static_cast<int>(next_.size()) < config_.width; ++j) {
    if (hits[j]) continue;
    Beam beam;
    beam.seq_id = 0;  // set by Commit
    beam.score = all[j].total;
    beam.history = extend(all[j]);
    next_.push_back(std::move(beam));
    result.next.push_back({running_[all[j].beam].seq_id, all[j].candidate.token_id});
  }
  num_generated_ = generated;

  // Can a running beam still beat the worst of W finished hypotheses?
  if (!next_.empty() && static_cast<int>(finished_.size()) == config_.width) {
    const float best_possible =
        Penalized(next_.front().score, num_generated_, config_.length_penalty);
    improvable_ = improvable_ && best_possible > finished_.back().score;
  }
  const bool finished_full = static_cast<int>(finished_.size()) == config_.width;
  result.done =
      all_hit || next_.empty() || !improvable_ || (finished_full && config_.early_stopping);
  if (result.done) {
    result.next.clear();
    // The beams that were running stay the fallback for Results().
    std::vector<Beam> fallback;
    for (Beam& beam : next_) fallback.push_back(std::move(beam));
    running_ = std::move(fallback);
    next_.clear();
  }
  return result;
}

void BeamSearch::Commit(const std::vector<uint64_t>& seq_ids) {
  PAGEDLLM_CHECK(seq_ids.size() == next_.size(), "Commit of ", seq_ids.size(), " beams, ",
                 next_.size(), " selected");
  for (size_t i = 0; i < seq_ids.size(); ++i) next_[i].seq_id = seq_ids[i];
  running_ = std::move(next_);
  next_.clear();
}

std::vector<uint64_t> BeamSearch::running_seq_ids() const {
  std::vector<uint64_t> ids;
  for (const Beam& beam : running_) ids.push_back(beam.seq_id);
  return ids;
}

std::vector<BeamHypothesis> BeamSearch::Results() const {
  std::vector<BeamHypothesis> results = finished_;
  if (static_cast<int>(results.size()) < config_.num_returned) {
    std::vector<BeamHypothesis> extra;
    for (const Beam& beam : running_) {
      if (beam.history.token_ids.empty()) continue;
      BeamHypothesis h = beam.history;
      h.score = Penalized(beam.score, static_cast<int>(h.token_ids.size()), config_.length_penalty);
      extra.push_back(std::move(h));
    }
    std::stable_sort(
        extra.begin(), extra.end(),
        [](const BeamHypothesis& a, const BeamHypothesis& b) { return a.score > b.score; });
    for (BeamHypothesis& h : extra) results.push_back(std::move(h));
  }
  if (static_cast<int>(results.size()) > config_.num_returned) {
    results.resize(config_.num_returned);
  }
  return results;
}

}  // namespace pagedllm::coordinator
