// A step's int32 inputs (token ids, positions, slots, block tables, ...) go to the device in one
// copy from pinned memory, queued without waiting for the step before to end (async
// scheduling): they are packed, in order, into one int32 device tensor, and each is used as a
// view of it.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "kernels/device.h"
#include "kernels/tensor.h"
#include "worker/pinned_buffer.h"

namespace pagedllm::worker {

// Elements of each shape, summed: the packed tensor's length.
int64_t PackedLength(const std::vector<std::vector<int64_t>>& shapes);

// Views of `packed` (int32, at least PackedLength(shapes) long), one per shape, back to back.
// A shape with no elements gives an empty Tensor.
std::vector<kernels::Tensor> PackedViews(const kernels::Tensor& packed,
                                         const std::vector<std::vector<int64_t>>& shapes);

// Copies `arrays`, back to back, into `packed`'s first elements through `staging`: one host copy
// into pinned memory and one device copy, queued on the stream. `staging` must stay unchanged
// until the device has run the copy.
absl::Status CopyPacked(kernels::Device& device,
                        const std::vector<const std::vector<int32_t>*>& arrays,
                        PinnedBuffer& staging, const kernels::Tensor& packed);

}  // namespace pagedllm::worker
