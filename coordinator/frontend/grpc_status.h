// The one place that maps absl::Status to gRPC status (codes have the same numbers).
#pragma once

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace pagedllm::coordinator {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

}  // namespace pagedllm::coordinator
