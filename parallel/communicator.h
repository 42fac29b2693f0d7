// Communicator: the collectives tensor parallelism needs, over the ranks of one group.
//
// One implementation per transport: MpiCommunicator (CPU tensors, parallel/mpi_communicator.h)
// now, NCCL (CUDA tensors) later. Every rank calls the same collectives in the same order with
// tensors of the same shape and dtype; a mismatch is a bug in the caller that MPI/NCCL may not
// detect (it can hang). Argument errors that a rank can see locally (wrong dtype, device or
// shape) return INVALID_ARGUMENT before any communication, so on consistent inputs every rank
// fails the same way; a transport failure returns UNAVAILABLE naming the call.
//
// Thread compatible: one thread uses a communicator (the worker's step thread). Not copyable;
// owned by the worker for its whole life. Collectives complete before they return (the tensor
// may be read or reused at once).
#pragma once

#include "absl/status/status.h"
#include "kernels/tensor.h"

namespace pagedllm::parallel {

class Communicator {
 public:
  Communicator() = default;
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  // This process's rank in [0, world_size()).
  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // tensor: [any shape], float32, on this communicator's device. Replaced in place by the
  // element-wise sum over all ranks; every rank ends with the same values.
  virtual absl::Status AllReduceSum(const kernels::Tensor& tensor) = 0;

  // input:  [n, ...rest], this rank's part.
  // output: [world_size * n, ...rest], same dtype; rows [r * n, (r + 1) * n) receive rank r's
  //         input (rank-major). `input` may be exactly this rank's rows of `output` (in place);
  //         any other overlap is INVALID_ARGUMENT.
  virtual absl::Status AllGather(const kernels::Tensor& input, const kernels::Tensor& output) = 0;

  // Returns once every rank has called Barrier.
  virtual absl::Status Barrier() = 0;
};

}  // namespace pagedllm::parallel
