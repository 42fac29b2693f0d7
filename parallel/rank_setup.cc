#include "parallel/rank_setup.h"

#include <mpi.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status.h"
#include "parallel/mpi_communicator.h"
#ifdef PAGEDLLM_WITH_CUDA
#include "parallel/nccl_communicator.h"
#endif

namespace pagedllm::parallel {

absl::StatusOr<std::unique_ptr<kernels::Device>> OpenRankDevice(const MpiSession& mpi,
                                                                const std::string& name) {
  if (name == "cpu") return kernels::MakeCpuDevice();
  if (name != "cuda") {
    return absl::InvalidArgumentError(
        absl::StrCat("--device must be cpu or cuda, got \"", name, "\""));
  }
  int ordinal = mpi.local_rank();
  if (std::getenv("PAGEDLLM_SHARE_ONE_GPU") != nullptr) {
    ordinal = 0;
    setenv("NCCL_HOSTID", absl::StrCat("pagedllm-rank-", mpi.rank()).c_str(), 1);
  }
  return kernels::MakeCudaDevice(ordinal);
}

absl::StatusOr<std::unique_ptr<Communicator>> OpenCommunicator(const MpiSession& mpi,
                                                               kernels::Device& device) {
  if (device.type() == kernels::DeviceType::kCpu) {
    return std::unique_ptr<Communicator>(std::make_unique<MpiCommunicator>(mpi));
  }
#ifdef PAGEDLLM_WITH_CUDA
  PAGEDLLM_ASSIGN_OR_RETURN(std::unique_ptr<NcclCommunicator> nccl,
                            NcclCommunicator::Create(mpi, device));
  return std::unique_ptr<Communicator>(std::move(nccl));
#else
  return absl::UnimplementedError("built without CUDA: no NCCL communicator");
#endif
}

int RunUnderMpi(int* argc, char*** argv, const std::string& program,
                const std::function<absl::Status(MpiSession&)>& run) {
  absl::StatusOr<MpiSession> mpi = MpiSession::Init(argc, argv);
  if (!mpi.ok()) {
    PAGEDLLM_LOG(ERROR) << mpi.status();
    return 1;
  }
  SetLogPrefix(absl::StrCat(program, "[", mpi->rank(), "]"));
  const absl::Status status = run(*mpi);
  if (!status.ok()) {
    PAGEDLLM_LOG(ERROR) << status;
    // Other ranks may be blocked in a collective: take the whole job down.
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  return 0;
}

}  // namespace pagedllm::parallel
