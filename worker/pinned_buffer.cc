#include "worker/pinned_buffer.h"

#include <algorithm>

#include "common/status.h"

namespace pagedllm::worker {

PinnedBuffer::~PinnedBuffer() {
  if (data_ != nullptr) device_->FreePinnedHost(data_);
}

absl::Status PinnedBuffer::Reserve(size_t bytes) {
  if (bytes <= capacity_) return absl::OkStatus();
  const size_t grown = std::max({bytes, 2 * capacity_, size_t{4096}});
  if (data_ != nullptr) device_->FreePinnedHost(data_);
  data_ = nullptr;
  capacity_ = 0;
  PAGEDLLM_ASSIGN_OR_RETURN(void* data, device_->AllocatePinnedHost(grown));
  data_ = static_cast<char*>(data);
  capacity_ = grown;
  return absl::OkStatus();
}

}  // namespace pagedllm::worker
