// Checks a command line's flags before absl::ParseCommandLine does: that parser reports a bad
// flag and exits 1, and the benchmark's contract for a bad flag is exit 2 with a message naming
// it. Also records which flags were given (this Abseil keeps IsSpecifiedOnCommandLine private).
#pragma once

#include <set>
#include <string>

#include "absl/status/status.h"

namespace pagedllm::bench {

// INVALID_ARGUMENT naming the flag: an unknown --name, a missing value, or a value the flag
// cannot parse. Flags that bring other flags (--flagfile, --fromenv, --tryfromenv, --undefok)
// end the check; Abseil's usage flags (--help*, --version) are left to Abseil. Parsing a value
// sets the flag, which absl::ParseCommandLine then sets again to the same value.
absl::Status CheckFlagSyntax(int argc, char** argv);

// The names of the flags the last CheckFlagSyntax saw (--noname counts as name).
const std::set<std::string>& FlagsGiven();

}  // namespace pagedllm::bench
