// Makes --help list a program's own flags (Abseil's default lists only flags defined in a file
// named after the program, which prints "No flags matched" for ours). Call before parsing.
#pragma once

#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace pagedllm {

inline void SetFlagsUsage(absl::string_view usage) {
  absl::SetProgramUsageMessage(usage);
  absl::FlagsUsageConfig config;
  const auto ours = [](absl::string_view path) { return !absl::StrContains(path, "absl/"); };
  config.contains_help_flags = ours;
  config.contains_helpshort_flags = ours;
  absl::SetFlagsUsageConfig(config);
}

}  // namespace pagedllm
