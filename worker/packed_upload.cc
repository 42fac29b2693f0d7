#include "worker/packed_upload.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/status.h"

namespace pagedllm::worker {

using kernels::DType;
using kernels::Tensor;

namespace {

int64_t Elements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

}  // namespace

int64_t PackedLength(const std::vector<std::vector<int64_t>>& shapes) {
  int64_t total = 0;
  for (const std::vector<int64_t>& shape : shapes) total += Elements(shape);
  return total;
}

std::vector<Tensor> PackedViews(const Tensor& packed,
                                const std::vector<std::vector<int64_t>>& shapes) {
  PAGEDLLM_CHECK(packed.dtype() == DType::kInt32 && packed.rank() == 1 &&
                     packed.dim(0) >= PackedLength(shapes),
                 "PackedViews: packed ", packed.ShapeString(), " cannot hold ",
                 PackedLength(shapes), " int32 values");
  std::vector<Tensor> views;
  views.reserve(shapes.size());
  int64_t offset = 0;
  for (const std::vector<int64_t>& shape : shapes) {
    const int64_t n = Elements(shape);
    views.push_back(n == 0 ? Tensor() : packed.Slice(offset, offset + n).Reshape(shape));
    offset += n;
  }
  return views;
}

absl::Status CopyPacked(kernels::Device& device,
                        const std::vector<const std::vector<int32_t>*>& arrays,
                        PinnedBuffer& staging, const Tensor& packed) {
  size_t bytes = 0;
  for (const std::vector<int32_t>* values : arrays) bytes += values->size() * sizeof(int32_t);
  if (bytes == 0) return absl::OkStatus();
  if (packed.dtype() != DType::kInt32 || packed.bytes() < bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("CopyPacked: ", bytes, " bytes do not fit ", packed.ShapeString()));
  }
  PAGEDLLM_RETURN_IF_ERROR(staging.Reserve(bytes));
  char* out = staging.data();
  for (const std::vector<int32_t>* values : arrays) {
    std::memcpy(out, values->data(), values->size() * sizeof(int32_t));
    out += values->size() * sizeof(int32_t);
  }
  device.CopyPinnedHostToDevice(packed.raw_data(), staging.data(), bytes);
  return absl::OkStatus();
}

std::vector<std::vector<int64_t>> StepInputShapes(int64_t tokens, int64_t seqs, int64_t table_width,
                                                  int64_t samples, int64_t fills) {
  return {{tokens},   {tokens}, {tokens},  {seqs, table_width},
          {seqs + 1}, {seqs},   {samples}, {fills, 2}};
}

ForwardBatch StepInputViews(const Tensor& packed, const std::vector<std::vector<int64_t>>& shapes,
                            Tensor* fills) {
  const std::vector<Tensor> views = PackedViews(packed, shapes);
  PAGEDLLM_CHECK(views.size() == 8, "StepInputViews: ", views.size(),
                 " shapes, not StepInputShapes' 8");
  ForwardBatch batch;
  batch.token_ids = views[0];
  batch.positions = views[1];
  batch.slot_mapping = views[2];
  batch.block_tables = views[3];
  batch.query_start = views[4];
  batch.context_lens = views[5];
  batch.sample_rows = views[6];  // empty when nothing samples
  *fills = views[7];
  return batch;
}

}  // namespace pagedllm::worker
