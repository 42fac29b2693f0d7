// Invariant checks: a broken invariant is a bug, so it aborts with a message naming the values.
// Not for run-time errors (those return absl::Status).
#pragma once

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace pagedllm {
[[noreturn]] void CheckFailed(const char* file, int line, const char* condition,
                              const std::string& message);
}  // namespace pagedllm

#define PAGEDLLM_CHECK(cond, ...)                                                      \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      ::pagedllm::CheckFailed(__FILE__, __LINE__, #cond, ::absl::StrCat(__VA_ARGS__)); \
    }                                                                                  \
  } while (0)

#define PAGEDLLM_CHECK_OK(expr)                                                              \
  do {                                                                                       \
    ::absl::Status pagedllm_check_status_ = (expr);                                          \
    if (!pagedllm_check_status_.ok()) {                                                      \
      ::pagedllm::CheckFailed(__FILE__, __LINE__, #expr, pagedllm_check_status_.ToString()); \
    }                                                                                        \
  } while (0)
