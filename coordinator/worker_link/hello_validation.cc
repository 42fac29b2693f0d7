#include "coordinator/worker_link/hello_validation.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "coordinator/launcher/hostfile.h"

namespace pagedllm::coordinator {

namespace wv1 = pagedllm::worker::v1;

namespace {

std::string Hex(uint64_t value) { return absl::StrCat("0x", absl::Hex(value, absl::kZeroPad16)); }

}  // namespace

std::string PeerAddress(const std::string& grpc_peer) {
  std::string address = grpc_peer;
  if (absl::StartsWith(address, "ipv4:")) {
    address = address.substr(5);
    return address.substr(0, address.rfind(':'));
  }
  if (!absl::StartsWith(address, "ipv6:")) return grpc_peer;
  address = address.substr(5);
  for (const auto& [encoded, plain] : {std::pair{"%5B", "["}, std::pair{"%5D", "]"}}) {
    for (size_t at = address.find(encoded); at != std::string::npos; at = address.find(encoded)) {
      address.replace(at, 3, plain);
    }
  }
  if (absl::StartsWith(address, "[")) address = address.substr(1, address.find(']') - 1);
  if (const size_t zone = address.find('%'); zone != std::string::npos) address.resize(zone);
  if (absl::StartsWith(address, "::ffff:") && address.find('.') != std::string::npos) {
    address = address.substr(7);
  }
  return address;
}

std::string DescribeWorker(const wv1::WorkerHello& hello, const std::string& peer_address) {
  return absl::StrCat("rank ", hello.rank(), " (host \"", hello.hostname(), "\" at ", peer_address,
                      ", pid ", hello.pid(), ")");
}

absl::Status CheckHandshake(const wv1::WorkerHello& hello, const std::string& peer_address,
                            const HandshakeExpectations& expected) {
  const std::string worker = absl::StrCat("worker ", DescribeWorker(hello, peer_address));
  if (!expected.allowed_addresses.empty() && !IsLoopbackAddress(peer_address) &&
      std::find(expected.allowed_addresses.begin(), expected.allowed_addresses.end(),
                peer_address) == expected.allowed_addresses.end()) {
    return absl::PermissionDeniedError(absl::StrCat(
        worker, " connected from ", peer_address, ", which is not a host of this job (",
        expected.hostfile,
        " and --advertise_host: ", absl::StrJoin(expected.allowed_addresses, ", "), ")"));
  }
  if (!expected.build_version.empty() && hello.build_version() != expected.build_version) {
    return absl::FailedPreconditionError(absl::StrCat(
        worker, " runs build \"", hello.build_version(), "\", the coordinator build \"",
        expected.build_version, "\": run one build of pagedllm on every node"));
  }
  if (expected.protocol_revision != 0 &&
      (hello.protocol_revision() != expected.protocol_revision ||
       hello.protocol_fingerprint() != expected.protocol_fingerprint)) {
    return absl::FailedPreconditionError(
        absl::StrCat(worker, " speaks worker protocol revision ", hello.protocol_revision(),
                     " (schema ", Hex(hello.protocol_fingerprint()), "), the coordinator revision ",
                     expected.protocol_revision, " (schema ", Hex(expected.protocol_fingerprint),
                     "): run one build of pagedllm on every node"));
  }
  if (expected.model_config_hash.has_value() &&
      hello.model_config_hash() != *expected.model_config_hash) {
    return absl::FailedPreconditionError(absl::StrCat(
        worker, " loaded model \"", hello.model().name(), "\" whose config.json (hash ",
        Hex(hello.model_config_hash()), ") differs from the coordinator's ",
        expected.model_config_path, " (hash ", Hex(*expected.model_config_hash),
        "): give every node the same model directory"));
  }
  return absl::OkStatus();
}

absl::Status ValidateHello(const wv1::WorkerHello& hello, int world_size) {
  const auto invalid = [&hello](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat("worker hello (rank ", hello.rank(), ", host \"",
                                                   hello.hostname(), "\", pid ", hello.pid(),
                                                   "): ", parts...));
  };
  if (hello.world_size() != world_size) {
    return invalid("world_size is ", hello.world_size(), ", this cluster has ", world_size,
                   " workers");
  }
  if (hello.rank() < 0 || hello.rank() >= world_size) {
    return invalid("rank must be in [0, ", world_size, ")");
  }
  if (hello.block_size() < 1 || hello.block_size() > 1024) {
    return invalid("block_size must be in [1, 1024], got ", hello.block_size());
  }
  if (hello.num_kv_blocks() < 1) {
    return invalid("num_kv_blocks must be >= 1, got ", hello.num_kv_blocks());
  }
  if (hello.num_swap_blocks() < 0) {
    return invalid("num_swap_blocks must be >= 0, got ", hello.num_swap_blocks());
  }
  const wv1::ModelInfo& model = hello.model();
  if (model.vocab_size() < 1)
    return invalid("model.vocab_size must be >= 1, got ", model.vocab_size());
  if (model.max_position_embeddings() < 1) {
    return invalid("model.max_position_embeddings must be >= 1, got ",
                   model.max_position_embeddings());
  }
  for (int i = 0; i < model.eos_token_ids_size(); ++i) {
    if (model.eos_token_ids(i) < 0 || model.eos_token_ids(i) >= model.vocab_size()) {
      return invalid("model.eos_token_ids[", i, "] = ", model.eos_token_ids(i),
                     " is outside the vocabulary [0, ", model.vocab_size(), ")");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSameCluster(const wv1::WorkerHello& hello, const wv1::WorkerHello& first) {
  const auto differs = [&](const char* what, const auto& mine, const auto& theirs) {
    return absl::FailedPreconditionError(absl::StrCat("worker rank ", hello.rank(), " (host \"",
                                                      hello.hostname(), "\") has ", what, " ", mine,
                                                      ", rank ", first.rank(), " has ", theirs));
  };
  if (hello.model().name() != first.model().name()) {
    return differs("model", hello.model().name(), first.model().name());
  }
  if (hello.model_config_hash() != first.model_config_hash()) {
    return differs("a model config.json of hash", Hex(hello.model_config_hash()),
                   Hex(first.model_config_hash()));
  }
  if (hello.model().vocab_size() != first.model().vocab_size()) {
    return differs("vocab_size", hello.model().vocab_size(), first.model().vocab_size());
  }
  if (hello.model().num_layers() != first.model().num_layers()) {
    return differs("num_layers", hello.model().num_layers(), first.model().num_layers());
  }
  if (hello.block_size() != first.block_size()) {
    return differs("block_size", hello.block_size(), first.block_size());
  }
  if (hello.num_kv_blocks() != first.num_kv_blocks()) {
    return differs("num_kv_blocks", hello.num_kv_blocks(), first.num_kv_blocks());
  }
  if (hello.num_swap_blocks() != first.num_swap_blocks()) {
    return differs("num_swap_blocks", hello.num_swap_blocks(), first.num_swap_blocks());
  }
  return absl::OkStatus();
}

absl::Status CheckSameModel(const wv1::WorkerHello& restarted, const wv1::WorkerHello& first) {
  const auto differs = [](const char* what, const auto& now, const auto& before) {
    return absl::FailedPreconditionError(absl::StrCat("the restarted workers have ", what, " ", now,
                                                      ", the first ones had ", before));
  };
  const wv1::ModelInfo& now = restarted.model();
  const wv1::ModelInfo& before = first.model();
  if (now.name() != before.name()) return differs("model", now.name(), before.name());
  if (restarted.model_config_hash() != first.model_config_hash()) {
    return differs("a model config.json of hash", Hex(restarted.model_config_hash()),
                   Hex(first.model_config_hash()));
  }
  if (now.vocab_size() != before.vocab_size()) {
    return differs("vocab_size", now.vocab_size(), before.vocab_size());
  }
  if (now.max_position_embeddings() != before.max_position_embeddings()) {
    return differs("max_position_embeddings", now.max_position_embeddings(),
                   before.max_position_embeddings());
  }
  if (now.num_layers() != before.num_layers()) {
    return differs("num_layers", now.num_layers(), before.num_layers());
  }
  if (!std::equal(now.eos_token_ids().begin(), now.eos_token_ids().end(),
                  before.eos_token_ids().begin(), before.eos_token_ids().end())) {
    return differs("eos_token_ids", absl::StrJoin(now.eos_token_ids(), ","),
                   absl::StrJoin(before.eos_token_ids(), ","));
  }
  if (restarted.block_size() != first.block_size()) {
    return differs("block_size", restarted.block_size(), first.block_size());
  }
  return absl::OkStatus();
}

}  // namespace pagedllm::coordinator
