#include "kernels/device.h"

#include <algorithm>
#include <chrono>
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

// The host clock: the CPU's work is done by the time Mark() is called.
class HostClockMark final : public DeviceMark {
 public:
  std::chrono::steady_clock::time_point time = std::chrono::steady_clock::now();
};

}  // namespace

absl::StatusOr<std::unique_ptr<DeviceMark>> Device::Mark() {
  return std::make_unique<HostClockMark>();
}

absl::StatusOr<int64_t> Device::NanosBetween(const DeviceMark& from, const DeviceMark& to) {
  const auto* first = dynamic_cast<const HostClockMark*>(&from);
  const auto* second = dynamic_cast<const HostClockMark*>(&to);
  if (first == nullptr || second == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("NanosBetween: marks not made by ", name(), "'s Mark()"));
  }
  return std::chrono::duration_cast<std::chrono::nanoseconds>(second->time - first->time).count();
}

absl::StatusOr<bool> Device::Reached(const DeviceMark& /*mark*/) { return true; }

absl::Status Device::WaitFor(const DeviceMark& /*mark*/) { return absl::OkStatus(); }

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
