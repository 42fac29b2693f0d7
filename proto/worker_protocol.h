// The worker protocol's identity, sent in every WorkerHello and checked by the coordinator: the
// revision the proto file declares, and a fingerprint of the schema compiled into this binary.
#pragma once

#include <cstdint>

#include "common/build_info.h"
#include "google/protobuf/descriptor.pb.h"
#include "pagedllm/worker/v1/worker.pb.h"

namespace pagedllm {

// A SequenceStep's last token id may be this: the token that sequence sampled in the step before,
// which the coordinator did not have yet when it sent the step (async scheduling).
inline constexpr int32_t kSampledTokenPlaceholder = -1;

inline int32_t WorkerProtocolRevision() { return pagedllm::worker::v1::WORKER_PROTOCOL_REVISION; }

// Fingerprint64 of worker.proto's schema (its FileDescriptorProto) as compiled into this binary:
// any change to a message, field or enum of the protocol changes it.
inline uint64_t WorkerProtocolFingerprint() {
  google::protobuf::FileDescriptorProto schema;
  pagedllm::worker::v1::WorkerHello::descriptor()->file()->CopyTo(&schema);
  return Fingerprint64(schema.SerializeAsString());
}

}  // namespace pagedllm
