#include "parallel/mpi_communicator.h"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/status.h"

namespace pagedllm::parallel {
namespace {

using kernels::DeviceType;
using kernels::DType;
using kernels::Tensor;

// INVALID_ARGUMENT unless `tensor` is a non-empty CPU tensor; `what` names it in the message.
absl::Status CheckCpuTensor(const char* op, const char* what, const Tensor& tensor) {
  if (tensor.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": ", what, " is an empty tensor"));
  }
  if (tensor.device_type() != DeviceType::kCpu) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": ", what, " ", tensor.ShapeString(),
                                                   " is not on the CPU; MpiCommunicator "
                                                   "works on CPU tensors only"));
  }
  return absl::OkStatus();
}

}  // namespace

MpiCommunicator::MpiCommunicator(const MpiSession& session)
    : session_(&session), rank_(session.rank()), world_size_(session.world_size()) {
  PAGEDLLM_CHECK(session.active(), "MpiCommunicator needs an active MpiSession");
}

absl::Status MpiCommunicator::AllReduceSum(const Tensor& tensor) {
  PAGEDLLM_RETURN_IF_ERROR(CheckCpuTensor("AllReduceSum", "tensor", tensor));
  if (tensor.dtype() != DType::kFloat32) {
    return absl::InvalidArgumentError(absl::StrCat("AllReduceSum: tensor ", tensor.ShapeString(),
                                                   " must be float32 on the CPU backend"));
  }
  if (world_size_ == 1) return absl::OkStatus();
  // MPI counts are int: reduce in pieces of at most INT_MAX elements.
  float* data = tensor.data<float>();
  const int64_t numel = tensor.numel();
  for (int64_t offset = 0; offset < numel;) {
    const int count = static_cast<int>(std::min<int64_t>(numel - offset, INT_MAX));
    PAGEDLLM_RETURN_IF_ERROR(MpiCallStatus(
        "MPI_Allreduce",
        MPI_Allreduce(MPI_IN_PLACE, data + offset, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD)));
    offset += count;
  }
  return absl::OkStatus();
}

absl::Status MpiCommunicator::AllGather(const Tensor& input, const Tensor& output) {
  PAGEDLLM_RETURN_IF_ERROR(CheckCpuTensor("AllGather", "input", input));
  PAGEDLLM_RETURN_IF_ERROR(CheckCpuTensor("AllGather", "output", output));
  bool fits = input.dtype() == output.dtype() && input.rank() >= 1;
  if (fits) {
    std::vector<int64_t> expected_shape = input.shape();  // [world_size * n, ...rest]
    expected_shape[0] *= world_size_;
    fits = expected_shape == output.shape();
  }
  if (!fits) {
    return absl::InvalidArgumentError(
        absl::StrCat("AllGather: output ", output.ShapeString(), " does not fit input ",
                     input.ShapeString(), " from ", world_size_,
                     " ranks (expected [world_size * dim 0, ...rest] of the same "
                     "dtype)"));
  }
  const size_t bytes = input.bytes();
  char* const own_rows = static_cast<char*>(output.raw_data()) + bytes * rank_;
  const char* const in = static_cast<const char*>(input.raw_data());
  const char* const out = static_cast<const char*>(output.raw_data());
  const bool in_place = in == own_rows;
  if (!in_place && in < out + output.bytes() && out < in + bytes) {
    return absl::InvalidArgumentError(
        "AllGather: input overlaps output other than as this rank's own rows");
  }
  if (bytes == 0) return absl::OkStatus();
  if (world_size_ == 1) {
    if (!in_place) std::memcpy(own_rows, in, bytes);
    return absl::OkStatus();
  }
  if (bytes > static_cast<size_t>(INT_MAX)) {
    return absl::InvalidArgumentError(absl::StrCat("AllGather: input ", input.ShapeString(), " is ",
                                                   bytes, " bytes; MPI counts stop at ", INT_MAX));
  }
  const int count = static_cast<int>(bytes);
  return MpiCallStatus("MPI_Allgather",
                       MPI_Allgather(in_place ? MPI_IN_PLACE : in, count, MPI_BYTE,
                                     output.raw_data(), count, MPI_BYTE, MPI_COMM_WORLD));
}

absl::Status MpiCommunicator::Barrier() { return session_->Barrier(); }

}  // namespace pagedllm::parallel
