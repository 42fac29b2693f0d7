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
#include "worker/model/llama_model.h"
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

// The shapes of a step's int32 inputs, in the order they are packed: token ids [tokens],
// positions [tokens], slot mapping [tokens], block tables [seqs, table_width], query starts
// [seqs + 1], context lengths [seqs], sample rows [samples], placeholder fills [fills, 2].
std::vector<std::vector<int64_t>> StepInputShapes(int64_t tokens, int64_t seqs, int64_t table_width,
                                                  int64_t samples, int64_t fills);

// The step's inputs as views of `packed`, laid out by `shapes` (StepInputShapes); `fills` gets
// the placeholder fills' view (empty when there are none). max_query_len is left unknown (0).
ForwardBatch StepInputViews(const kernels::Tensor& packed,
                            const std::vector<std::vector<int64_t>>& shapes,
                            kernels::Tensor* fills);

}  // namespace pagedllm::worker
