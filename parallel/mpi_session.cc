#include "parallel/mpi_session.h"

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/status.h"

namespace pagedllm::parallel {
namespace {

// This process's rank among those on its host.
absl::StatusOr<int> LocalRank(int world_rank, int world_size) {
  if (const char* env = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK"); env != nullptr) {
    int local_rank = -1;
    if (absl::SimpleAtoi(env, &local_rank) && local_rank >= 0 && local_rank < world_size) {
      return local_rank;
    }
  }
  MPI_Comm node_comm = MPI_COMM_NULL;
  PAGEDLLM_RETURN_IF_ERROR(MpiCallStatus("MPI_Comm_split_type",
                                         MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED,
                                                             world_rank, MPI_INFO_NULL, &node_comm),
                                         absl::StatusCode::kInternal));
  int local_rank = 0;
  const int rank_code = MPI_Comm_rank(node_comm, &local_rank);
  const int free_code = MPI_Comm_free(&node_comm);
  PAGEDLLM_RETURN_IF_ERROR(MpiCallStatus("MPI_Comm_rank", rank_code, absl::StatusCode::kInternal));
  PAGEDLLM_RETURN_IF_ERROR(MpiCallStatus("MPI_Comm_free", free_code, absl::StatusCode::kInternal));
  return local_rank;
}

}  // namespace

absl::Status MpiCallStatus(const char* call, int code, absl::StatusCode status_code) {
  if (code == MPI_SUCCESS) return absl::OkStatus();
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
  const std::string description =
      length > 0 ? std::string(text, static_cast<size_t>(length)) : "unknown MPI error";
  return absl::Status(status_code,
                      absl::StrCat(call, " failed: ", description, " (code ", code, ")"));
}

absl::StatusOr<MpiSession> MpiSession::Init(int* argc, char*** argv) {
  int initialized = 0;
  int finalized = 0;
  PAGEDLLM_RETURN_IF_ERROR(
      MpiCallStatus("MPI_Initialized", MPI_Initialized(&initialized), absl::StatusCode::kInternal));
  PAGEDLLM_RETURN_IF_ERROR(
      MpiCallStatus("MPI_Finalized", MPI_Finalized(&finalized), absl::StatusCode::kInternal));
  if (initialized || finalized) {
    return absl::FailedPreconditionError(
        absl::StrCat("MPI was already ", finalized ? "finalised" : "initialised",
                     " in this process; create exactly one MpiSession per process"));
  }
  int provided = MPI_THREAD_SINGLE;
  PAGEDLLM_RETURN_IF_ERROR(
      MpiCallStatus("MPI_Init_thread", MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided),
                    absl::StatusCode::kInternal));
  // From here on `session` finalises MPI if initialisation fails half way.
  MpiSession session(0, 1, 0);
  PAGEDLLM_RETURN_IF_ERROR(MpiCallStatus("MPI_Comm_set_errhandler",
                                         MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN),
                                         absl::StatusCode::kInternal));
  if (provided < MPI_THREAD_FUNNELED) {
    return absl::InternalError(absl::StrCat("MPI_Init_thread provided thread level ", provided,
                                            ", below MPI_THREAD_FUNNELED (", MPI_THREAD_FUNNELED,
                                            ")"));
  }
  PAGEDLLM_RETURN_IF_ERROR(MpiCallStatus(
      "MPI_Comm_rank", MPI_Comm_rank(MPI_COMM_WORLD, &session.rank_), absl::StatusCode::kInternal));
  PAGEDLLM_RETURN_IF_ERROR(MpiCallStatus("MPI_Comm_size",
                                         MPI_Comm_size(MPI_COMM_WORLD, &session.world_size_),
                                         absl::StatusCode::kInternal));
  PAGEDLLM_ASSIGN_OR_RETURN(session.local_rank_, LocalRank(session.rank_, session.world_size_));
  return session;
}

MpiSession::MpiSession(MpiSession&& other) noexcept
    : active_(std::exchange(other.active_, false)),
      rank_(other.rank_),
      world_size_(other.world_size_),
      local_rank_(other.local_rank_) {}

MpiSession& MpiSession::operator=(MpiSession&& other) noexcept {
  if (this != &other) {
    // Finalising here would end MPI for the session being moved in, so a live session may only
    // be assigned over an inert one.
    PAGEDLLM_CHECK(!active_, "move-assigning over a live MpiSession would finalise MPI");
    active_ = std::exchange(other.active_, false);
    rank_ = other.rank_;
    world_size_ = other.world_size_;
    local_rank_ = other.local_rank_;
  }
  return *this;
}

MpiSession::~MpiSession() {
  if (active_) MPI_Finalize();
}

absl::Status MpiSession::BroadcastBytes(void* data, size_t bytes, int root) const {
  PAGEDLLM_CHECK(active_, "BroadcastBytes on an inert (moved-from) MpiSession");
  if (root < 0 || root >= world_size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("BroadcastBytes: root ", root, " is outside [0, ", world_size_, ")"));
  }
  // MPI counts are int: send in pieces of at most INT_MAX bytes.
  char* bytes_data = static_cast<char*>(data);
  for (size_t offset = 0; offset < bytes;) {
    const int count = static_cast<int>(std::min<size_t>(bytes - offset, INT_MAX));
    PAGEDLLM_RETURN_IF_ERROR(MpiCallStatus(
        "MPI_Bcast", MPI_Bcast(bytes_data + offset, count, MPI_BYTE, root, MPI_COMM_WORLD)));
    offset += static_cast<size_t>(count);
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> MpiSession::AllReduceMin(int64_t value) const {
  PAGEDLLM_CHECK(active_, "AllReduceMin on an inert (moved-from) MpiSession");
  int64_t result = value;
  PAGEDLLM_RETURN_IF_ERROR(MpiCallStatus(
      "MPI_Allreduce", MPI_Allreduce(&value, &result, 1, MPI_INT64_T, MPI_MIN, MPI_COMM_WORLD)));
  return result;
}

absl::Status MpiSession::Barrier() const {
  PAGEDLLM_CHECK(active_, "Barrier on an inert (moved-from) MpiSession");
  return MpiCallStatus("MPI_Barrier", MPI_Barrier(MPI_COMM_WORLD));
}

std::string Hostname() {
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "unknown-host";
  return name;
}

}  // namespace pagedllm::parallel
