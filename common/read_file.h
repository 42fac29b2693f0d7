// Reads a whole file: NOT_FOUND naming the path when it cannot be opened.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace pagedllm {

absl::StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace pagedllm
