// Status propagation helpers. Abseil 20220623 has no RETURN_IF_ERROR / ASSIGN_OR_RETURN,
// so these two macros are ours. Use absl::Status / absl::StatusOr for everything that can
// happen at run time (bad files, bad requests, lost peers); use PAGEDLLM_CHECK for what must not.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define PAGEDLLM_CONCAT_INNER_(a, b) a##b
#define PAGEDLLM_CONCAT_(a, b) PAGEDLLM_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define PAGEDLLM_RETURN_IF_ERROR(expr)                   \
  do {                                                   \
    ::absl::Status pagedllm_status_ = (expr);            \
    if (!pagedllm_status_.ok()) return pagedllm_status_; \
  } while (0)

// `lhs = value of expr` (an absl::StatusOr<T>), or returns its error status.
#define PAGEDLLM_ASSIGN_OR_RETURN(lhs, expr) \
  PAGEDLLM_ASSIGN_OR_RETURN_IMPL_(PAGEDLLM_CONCAT_(pagedllm_statusor_, __LINE__), lhs, expr)

#define PAGEDLLM_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                    \
  if (!tmp.ok()) return std::move(tmp).status();        \
  lhs = std::move(tmp).value()
