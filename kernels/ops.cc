#include "kernels/ops.h"

#include <utility>

namespace pagedllm::kernels {

absl::Status Ops::TakeFailure() { return std::exchange(failure_, absl::OkStatus()); }

void Ops::RecordFailure(absl::Status failure) {
  if (failure_.ok()) failure_ = std::move(failure);
}

}  // namespace pagedllm::kernels
