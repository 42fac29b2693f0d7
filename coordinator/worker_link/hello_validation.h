// Checks a worker's hello before it touches the hub's state: a bad hello is refused with a status
// naming the field, never fatal to the cluster.
//
// The handshake, checked right after the secret: a worker must connect from a host of the job
// (multi-node: the hostfile's hosts and this node; loopback always) and run the coordinator's
// build, protocol and model (config.json), or it is refused naming its host and what differs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pagedllm/worker/v1/worker.pb.h"

namespace pagedllm::coordinator {

// What every hello must match besides the secret. Fields left empty are not checked (a hub tested
// alone).
struct HandshakeExpectations {
  std::string build_version;                  // BuildVersion()
  int32_t protocol_revision = 0;              // WorkerProtocolRevision()
  uint64_t protocol_fingerprint = 0;          // WorkerProtocolFingerprint()
  std::optional<uint64_t> model_config_hash;  // of the coordinator's --model config.json
  std::string model_config_path;              // that file, for messages
  // Addresses workers may connect from (numeric, see WorkerAddressesOf); loopback is always
  // allowed. Empty: any address (no hostfile).
  std::vector<std::string> allowed_addresses;
  std::string hostfile;  // where allowed_addresses came from, for messages
};

// This coordinator's expectations: its build and protocol; the hash of `model_dir`/config.json
// when it can read it (a coordinator without the model files checks only that the ranks agree);
// with a hostfile, the addresses of its hosts and of `advertise_host`. An error naming a host
// that does not resolve or a hostfile that cannot be read. (In coordinator_handshake.cc: the
// checks below stand alone, compiled into the edge fuzz test.)
absl::StatusOr<HandshakeExpectations> CoordinatorHandshake(const std::string& model_dir,
                                                           const std::string& hostfile,
                                                           const std::string& advertise_host);

// The address in a gRPC peer string: "10.0.0.2" from "ipv4:10.0.0.2:41234", "::1" from
// "ipv6:[::1]:5" (or its %5B..%5D spelling), IPv4-mapped IPv6 as IPv4; other peers as given.
std::string PeerAddress(const std::string& grpc_peer);

// How messages name a worker: `rank 1 (host "node2" at 10.0.0.3, pid 4242)`.
std::string DescribeWorker(const pagedllm::worker::v1::WorkerHello& hello,
                           const std::string& peer_address);

// OK when the hello may join: PERMISSION_DENIED when `peer_address` is not among the allowed
// ones; FAILED_PRECONDITION naming the host and the field when the build, the protocol or the
// model's config.json differs from the coordinator's.
absl::Status CheckHandshake(const pagedllm::worker::v1::WorkerHello& hello,
                            const std::string& peer_address, const HandshakeExpectations& expected);

// OK when `hello` can belong to a cluster of world_size workers: rank in range, sane KV cache
// sizes, a model with a vocabulary and positions. INVALID_ARGUMENT naming the field otherwise.
absl::Status ValidateHello(const pagedllm::worker::v1::WorkerHello& hello, int world_size);

// OK when `hello` describes the same model and KV cache as `first` (another rank's hello);
// FAILED_PRECONDITION naming what differs otherwise.
absl::Status CheckSameCluster(const pagedllm::worker::v1::WorkerHello& hello,
                              const pagedllm::worker::v1::WorkerHello& first);

// OK when restarted workers (`restarted`, rank 0's hello) serve what the first ones did (`first`):
// the same model, vocabulary, positions, stop tokens and block size; their KV cache may be sized
// differently. FAILED_PRECONDITION naming what differs otherwise.
absl::Status CheckSameModel(const pagedllm::worker::v1::WorkerHello& restarted,
                            const pagedllm::worker::v1::WorkerHello& first);

}  // namespace pagedllm::coordinator
