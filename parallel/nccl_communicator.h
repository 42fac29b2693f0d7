// NcclCommunicator: all-reduce and all-gather of GPU tensors over NCCL, issued on the device's
// stream so they are ordered with the forward pass (and can be captured in CUDA graphs).
// Bootstrap: rank 0 makes the NCCL unique id and broadcasts it over MPI; each rank uses the GPU
// its device was created on. Owns the NCCL communicator; used from the worker's step thread.
// Built only with the CUDA backend (PAGEDLLM_WITH_CUDA).
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "kernels/device.h"
#include "parallel/communicator.h"
#include "parallel/mpi_session.h"

namespace pagedllm::parallel {

class NcclCommunicator final : public Communicator {
 public:
  // Collective: every rank calls it. `device` must be a CUDA device; its stream is used.
  // `session` must outlive the communicator.
  static absl::StatusOr<std::unique_ptr<NcclCommunicator>> Create(const MpiSession& session,
                                                                  kernels::Device& device);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  // In place; float32, bfloat16 or float16. Asynchronous on the device's stream.
  absl::Status AllReduceSum(const kernels::Tensor& tensor) override;
  // output: [world_size * input.dim(0), ...], rank-major. Asynchronous on the device's stream.
  absl::Status AllGather(const kernels::Tensor& input, const kernels::Tensor& output) override;
  // Waits for this rank's queued work, then for every rank (MPI barrier).
  absl::Status Barrier() override;

 private:
  struct State;
  NcclCommunicator(int rank, int world_size, std::unique_ptr<State> state);

  int rank_;
  int world_size_;
  std::unique_ptr<State> state_;
};

}  // namespace pagedllm::parallel
