// MpiCommunicator: the Communicator of the CPU backend, over MPI_COMM_WORLD.
//
// Works on CPU tensors only (host memory MPI can read); AllReduceSum takes float32, AllGather
// any dtype (it only moves bytes). With world_size 1, AllReduceSum is a no-op and AllGather a
// copy. Borrows the MpiSession, which must outlive it; uses MPI from the session's thread only.
#pragma once

#include "absl/status/status.h"
#include "kernels/tensor.h"
#include "parallel/communicator.h"
#include "parallel/mpi_session.h"

namespace pagedllm::parallel {

class MpiCommunicator : public Communicator {
 public:
  // `session` must be active and outlive this communicator.
  explicit MpiCommunicator(const MpiSession& session);

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }

  absl::Status AllReduceSum(const kernels::Tensor& tensor) override;
  absl::Status AllGather(const kernels::Tensor& input, const kernels::Tensor& output) override;
  absl::Status Barrier() override;

 private:
  const MpiSession* session_;
  int rank_;
  int world_size_;
};

}  // namespace pagedllm::parallel
