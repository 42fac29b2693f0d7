// What every program started by mpirun (the worker, the all-reduce bench) does first: open this
// rank's device and its communicator, and run inside an MPI session that takes the whole job down
// when one rank fails (the others may be blocked in a collective).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "kernels/device.h"
#include "parallel/communicator.h"
#include "parallel/mpi_session.h"

namespace pagedllm::parallel {

// "cpu", or "cuda": the GPU of this rank's local rank. With PAGEDLLM_SHARE_ONE_GPU set (tests of
// tp > 1 on one GPU) every rank takes GPU 0 and NCCL, which refuses two ranks on one GPU of one
// host, is told each rank is a host of its own, so it talks over sockets (see GPU-NODES.md):
// correct, never fast. INVALID_ARGUMENT naming `name` otherwise.
absl::StatusOr<std::unique_ptr<kernels::Device>> OpenRankDevice(const MpiSession& mpi,
                                                                const std::string& name);

// MPI all-reduce on the CPU device, NCCL on CUDA (UNIMPLEMENTED when built without CUDA).
absl::StatusOr<std::unique_ptr<Communicator>> OpenCommunicator(const MpiSession& mpi,
                                                               kernels::Device& device);

// Initialises MPI, prefixes log lines with "<program>[rank]", runs `run`, and returns main's exit
// status: 1 when MPI cannot start; on an error from `run` it logs it and calls MPI_Abort.
int RunUnderMpi(int* argc, char*** argv, const std::string& program,
                const std::function<absl::Status(MpiSession&)>& run);

}  // namespace pagedllm::parallel
