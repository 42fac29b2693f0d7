#include "coordinator/worker_link/step_deadline.h"

#include <algorithm>

#include "absl/numeric/bits.h"

namespace pagedllm::coordinator {

int StepDeadline::SizeClass(int num_tokens) {
  const uint32_t tokens = static_cast<uint32_t>(std::max(1, num_tokens));
  return std::min(31, static_cast<int>(absl::bit_width(tokens)) - 1);
}

absl::Duration StepDeadline::For(int num_tokens) const {
  if (num_observed_ < kWarmupSteps) return cap_;
  const int size = SizeClass(num_tokens);
  bool seen_this_size_or_larger = false;
  absl::Duration slowest = absl::ZeroDuration();
  for (int s = 0; s < static_cast<int>(slowest_.size()); ++s) {
    if (slowest_[s] < absl::ZeroDuration()) continue;
    if (s >= size) seen_this_size_or_larger = true;
    if (s <= size + 1) slowest = std::max(slowest, slowest_[s]);
  }
  if (!seen_this_size_or_larger) return cap_;
  return std::min(cap_, std::max(kFloor, kSlack * slowest));
}

void StepDeadline::Observe(int num_tokens, absl::Duration took) {
  ++num_observed_;
  absl::Duration& slowest = slowest_[SizeClass(num_tokens)];
  slowest = std::max(slowest, took);
}

}  // namespace pagedllm::coordinator
