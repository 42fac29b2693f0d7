// Open MPI hostfiles (`--hostfile`, or the one a cluster-configs file's `hosts:` becomes): which
// hosts the workers run on, and the addresses they may connect to the coordinator from.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace pagedllm::coordinator {

// The host of every entry of an Open MPI hostfile, in order: lines "host [slots=N] [max_slots=M]"
// ("user@host" gives host), blank lines and # comments skipped. NOT_FOUND naming the path when it
// cannot be read; INVALID_ARGUMENT when it lists no host.
absl::StatusOr<std::vector<std::string>> ReadHostfileHosts(const std::string& path);

// Every address `host` (a name or a numeric address) resolves to, numeric ("10.0.0.2", "fd00::2";
// IPv4-mapped IPv6 as IPv4). NOT_FOUND naming the host when it resolves to none.
absl::StatusOr<std::vector<std::string>> ResolveHost(const std::string& host);

// The addresses workers of a job over `hostfile` may connect from: every hostfile host's and
// `advertise_host`'s (ranks on the coordinator's own node dial that address), resolved now.
// Loopback is always allowed besides (see IsLoopbackAddress). An error naming the host that
// does not resolve.
absl::StatusOr<std::vector<std::string>> WorkerAddressesOf(const std::string& hostfile,
                                                           const std::string& advertise_host);

// 127.0.0.0/8 or ::1 (a numeric address as ResolveHost gives).
inline bool IsLoopbackAddress(const std::string& address) {
  return address.rfind("127.", 0) == 0 || address == "::1";
}

}  // namespace pagedllm::coordinator
