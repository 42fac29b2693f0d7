// CoordinatorHandshake (hello_validation.h): what this coordinator expects of every hello. Apart
// from the checks themselves (hello_validation.cc), which stand alone for the edge fuzz test.
#include <utility>

#include "common/build_info.h"
#include "common/read_file.h"
#include "coordinator/launcher/hostfile.h"
#include "coordinator/worker_link/hello_validation.h"
#include "proto/worker_protocol.h"

namespace pagedllm::coordinator {

absl::StatusOr<HandshakeExpectations> CoordinatorHandshake(const std::string& model_dir,
                                                           const std::string& hostfile,
                                                           const std::string& advertise_host) {
  HandshakeExpectations expected;
  expected.build_version = BuildVersion();
  expected.protocol_revision = WorkerProtocolRevision();
  expected.protocol_fingerprint = WorkerProtocolFingerprint();
  if (!model_dir.empty()) {
    expected.model_config_path = model_dir + "/config.json";
    if (absl::StatusOr<std::string> config = ReadFile(expected.model_config_path); config.ok()) {
      expected.model_config_hash = Fingerprint64(*config);
    }
  }
  if (!hostfile.empty()) {
    absl::StatusOr<std::vector<std::string>> addresses =
        WorkerAddressesOf(hostfile, advertise_host);
    if (!addresses.ok()) return addresses.status();
    expected.allowed_addresses = *std::move(addresses);
    expected.hostfile = hostfile;
  }
  return expected;
}

}  // namespace pagedllm::coordinator
