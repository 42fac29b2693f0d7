#include "kernels/device.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

namespace pagedllm::kernels {

absl::StatusOr<Tensor> Device::Allocate(DType dtype, std::vector<int64_t> shape) {
  int64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("Allocate: negative dimension in shape [", absl::StrJoin(shape, ", "), "]"));
    }
    if (d != 0 && numel > std::numeric_limits<int64_t>::max() / d) {
      return absl::ResourceExhaustedError(
          absl::StrCat("Allocate: shape [", absl::StrJoin(shape, ", "), "] has too many elements"));
    }
    numel *= d;
  }
  const size_t element_size = DTypeSize(dtype);
  if (static_cast<uint64_t>(numel) > std::numeric_limits<size_t>::max() / element_size) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "Allocate: shape [", absl::StrJoin(shape, ", "), "] ", DTypeName(dtype), " is too big"));
  }
  const size_t bytes = static_cast<size_t>(numel) * element_size;
  PAGEDLLM_ASSIGN_OR_RETURN(void* data, AllocateBytes(bytes));
  auto buffer = std::make_shared<Buffer>(this, data, bytes);
  return Tensor(std::move(buffer), 0, dtype, std::move(shape));
}

namespace {

// Replays by running the body again: the CPU has nothing to record.
class RerunGraph final : public DeviceGraph {
 public:
  explicit RerunGraph(std::function<absl::Status()> body) : body_(std::move(body)) {}
  absl::Status Replay() override { return body_(); }

 private:
  std::function<absl::Status()> body_;
};

}  // namespace

absl::StatusOr<void*> Device::AllocatePinnedHost(size_t bytes) {
  // 4 KiB alignment: whole pages, like cudaHostAlloc's.
  void* data = std::aligned_alloc(4096, (std::max<size_t>(bytes, 1) + 4095) / 4096 * 4096);
  if (data == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("AllocatePinnedHost: no host memory for ", bytes, " bytes"));
  }
  return data;
}

void Device::FreePinnedHost(void* data) { std::free(data); }

absl::StatusOr<std::unique_ptr<DeviceGraph>> Device::CaptureGraph(
    std::function<absl::Status()> body) {
  return std::unique_ptr<DeviceGraph>(new RerunGraph(std::move(body)));
}

}  // namespace pagedllm::kernels
