// Cluster description files (cluster-configs/*.yaml): each top-level key sets the coordinator
// flag of the same name unless that flag was given on the command line. Two keys are lists:
// `hosts` (mpirun hostfile entries: {host, slots}) and `mpirun_args`; `env` is a map of
// variables exported to every worker. Unknown keys are an error naming the key and the file.
#pragma once

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"

namespace pagedllm::coordinator {

// `given_on_command_line` holds the flag names the user set (they win over the file);
// `hostfile_dir` receives the generated mpirun hostfile when the file lists `hosts`.
absl::Status ApplyClusterConfig(const std::string& path,
                                const absl::flat_hash_set<std::string>& given_on_command_line,
                                const std::string& hostfile_dir);

// The flag names set in argv ("--name", "--name=value", "--noname" for booleans).
absl::flat_hash_set<std::string> FlagsOnCommandLine(int argc, char** argv);

}  // namespace pagedllm::coordinator
