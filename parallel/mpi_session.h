// MpiSession: MPI's lifetime in a worker process (MPI_Init_thread .. MPI_Finalize) and the few
// bootstrap collectives the workers need before they have a Communicator: broadcasting the
// NCCL unique id and agreeing on the KV cache's block count.
//
// Exactly one session per process, created at the start of main and destroyed at its end
// (MPI cannot be initialised twice). Move-only; a moved-from session is inert. Every MPI return
// code is checked (MPI_COMM_WORLD's error handler is set to MPI_ERRORS_RETURN) and becomes a
// Status naming the call. MPI is initialised with MPI_THREAD_FUNNELED: only the thread that
// created the session may make MPI calls, through it or an MpiCommunicator.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pagedllm::parallel {

class MpiSession {
 public:
  // Initialises MPI (argc/argv may be null). FAILED_PRECONDITION if MPI was already initialised
  // or finalised in this process; INTERNAL if MPI cannot provide MPI_THREAD_FUNNELED.
  static absl::StatusOr<MpiSession> Init(int* argc, char*** argv);

  MpiSession(MpiSession&& other) noexcept;
  MpiSession& operator=(MpiSession&& other) noexcept;
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  ~MpiSession();  // MPI_Finalize, unless moved from

  // False once moved from.
  bool active() const { return active_; }
  // Rank and size in MPI_COMM_WORLD.
  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  // Rank among the processes on this host: $OMPI_COMM_WORLD_LOCAL_RANK when mpirun set it,
  // else from MPI_Comm_split_type(MPI_COMM_TYPE_SHARED). Picks the GPU.
  int local_rank() const { return local_rank_; }

  // Copies `bytes` bytes at `data` from rank `root` to every rank (all ranks pass the same
  // size and root). INVALID_ARGUMENT for a root outside [0, world_size).
  absl::Status BroadcastBytes(void* data, size_t bytes, int root) const;
  // The minimum of `value` over all ranks, returned on every rank.
  absl::StatusOr<int64_t> AllReduceMin(int64_t value) const;
  absl::Status Barrier() const;

 private:
  MpiSession(int rank, int world_size, int local_rank)
      : active_(true), rank_(rank), world_size_(world_size), local_rank_(local_rank) {}

  bool active_ = false;
  int rank_ = 0;
  int world_size_ = 1;
  int local_rank_ = 0;
};

// OK when `code` is MPI_SUCCESS; else a Status with `status_code` whose message names the call
// and gives MPI's error string, e.g. "MPI_Allreduce failed: MPI_ERR_TRUNCATE: message
// truncated (code 15)".
absl::Status MpiCallStatus(const char* call, int code,
                           absl::StatusCode status_code = absl::StatusCode::kUnavailable);

// This host's name (gethostname), or "unknown-host" if it cannot be read.
std::string Hostname();

}  // namespace pagedllm::parallel
