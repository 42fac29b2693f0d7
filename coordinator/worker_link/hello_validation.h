// Checks a worker's hello before it touches the hub's state: a bad hello is refused with a status
// naming the field, never fatal to the cluster.
#pragma once

#include "absl/status/status.h"
#include "pagedllm/worker/v1/worker.pb.h"

namespace pagedllm::coordinator {

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
