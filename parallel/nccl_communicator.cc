#include "parallel/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace pagedllm::parallel {

namespace {

using kernels::DType;
using kernels::Tensor;

absl::Status NcclStatus(ncclResult_t result, const char* call) {
  if (result == ncclSuccess) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(call, " failed: ", ncclGetErrorString(result), " (",
                                             ncclGetLastError(nullptr), ")"));
}

absl::StatusOr<ncclDataType_t> NcclType(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return ncclFloat32;
    case DType::kBFloat16:
      return ncclBfloat16;
    case DType::kFloat16:
      return ncclFloat16;
    case DType::kInt32:
      return ncclInt32;
  }
  return absl::InvalidArgumentError("unknown dtype");
}

absl::Status CheckGpuTensor(const char* op, const char* what, const Tensor& tensor) {
  if (tensor.empty()) return absl::InvalidArgumentError(absl::StrCat(op, ": ", what, " is empty"));
  if (tensor.device_type() != kernels::DeviceType::kCuda) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": ", what, " ", tensor.ShapeString(), " is not on a GPU"));
  }
  return absl::OkStatus();
}

}  // namespace

struct NcclCommunicator::State {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  const MpiSession* session = nullptr;
};

NcclCommunicator::NcclCommunicator(int rank, int world_size, std::unique_ptr<State> state)
    : rank_(rank), world_size_(world_size), state_(std::move(state)) {}

NcclCommunicator::~NcclCommunicator() {
  if (state_ && state_->comm != nullptr) ncclCommDestroy(state_->comm);
}

absl::StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Create(
    const MpiSession& session, kernels::Device& device) {
  if (device.type() != kernels::DeviceType::kCuda) {
    return absl::InvalidArgumentError("NcclCommunicator needs a CUDA device, got " + device.name());
  }
  ncclUniqueId id;
  if (session.rank() == 0) {
    absl::Status status = NcclStatus(ncclGetUniqueId(&id), "ncclGetUniqueId");
    if (!status.ok()) return status;
  }
  absl::Status broadcast = session.BroadcastBytes(&id, sizeof(id), 0);
  if (!broadcast.ok()) return broadcast;
  auto state = std::make_unique<State>();
  state->stream = static_cast<cudaStream_t>(device.native_stream());
  state->session = &session;
  absl::Status init = NcclStatus(
      ncclCommInitRank(&state->comm, session.world_size(), id, session.rank()), "ncclCommInitRank");
  if (!init.ok()) return init;
  PAGEDLLM_LOG(INFO) << "NCCL " << NCCL_MAJOR << "." << NCCL_MINOR << " communicator: rank "
                     << session.rank() << " of " << session.world_size() << " on " << device.name();
  return std::unique_ptr<NcclCommunicator>(
      new NcclCommunicator(session.rank(), session.world_size(), std::move(state)));
}

absl::Status NcclCommunicator::AllReduceSum(const Tensor& tensor) {
  if (absl::Status s = CheckGpuTensor("AllReduceSum", "tensor", tensor); !s.ok()) return s;
  if (world_size_ == 1) return absl::OkStatus();
  absl::StatusOr<ncclDataType_t> type = NcclType(tensor.dtype());
  if (!type.ok()) return type.status();
  return NcclStatus(ncclAllReduce(tensor.raw_data(), tensor.raw_data(), tensor.numel(), *type,
                                  ncclSum, state_->comm, state_->stream),
                    "ncclAllReduce");
}

absl::Status NcclCommunicator::AllGather(const Tensor& input, const Tensor& output) {
  if (absl::Status s = CheckGpuTensor("AllGather", "input", input); !s.ok()) return s;
  if (absl::Status s = CheckGpuTensor("AllGather", "output", output); !s.ok()) return s;
  if (output.numel() != input.numel() * world_size_ || output.dtype() != input.dtype()) {
    return absl::InvalidArgumentError(absl::StrCat("AllGather: output ", output.ShapeString(),
                                                   " is not world_size (", world_size_,
                                                   ") times input ", input.ShapeString()));
  }
  absl::StatusOr<ncclDataType_t> type = NcclType(input.dtype());
  if (!type.ok()) return type.status();
  return NcclStatus(ncclAllGather(input.raw_data(), output.raw_data(), input.numel(), *type,
                                  state_->comm, state_->stream),
                    "ncclAllGather");
}

absl::Status NcclCommunicator::Barrier() {
  const cudaError_t error = cudaStreamSynchronize(state_->stream);
  if (error != cudaSuccess) {
    return absl::InternalError(absl::StrCat("cudaStreamSynchronize: ", cudaGetErrorString(error)));
  }
  return state_->session->Barrier();
}

}  // namespace pagedllm::parallel
