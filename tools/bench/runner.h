// Sends the benchmark's requests through the public gRPC API and times every streamed chunk.
// One thread drives every call through one completion queue (gRPC's async API): calls start at
// their arrival times, at most max_in_flight at once, and a chunk's time is taken when the queue
// hands it over, so no thread per call competes for the timestamps.
#pragma once

#include <string>
#include <vector>

#include "pagedllm/v1/generation.grpc.pb.h"
#include "tools/bench/stats.h"

namespace pagedllm::bench {

struct RunOptions {
  // Seconds since the run's start at which each request is due (ascending; empty: all at 0).
  std::vector<double> arrivals_s;
  int max_in_flight = 0;  // 0: no cap
  double timeout_s = 0;   // deadline of each call; 0: none
  bool progress = true;   // a line on stderr every progress_interval_s
  double progress_interval_s = 2.0;
  std::string progress_label;  // printed before the progress counts, e.g. "rate 4"
};

struct RunResult {
  std::vector<RequestRecord> records;  // one per request, in the order given
  double wall_s = 0;                   // the run's start to the last call's end
};

// Never fails as a whole: a call's error is recorded in its RequestRecord.
RunResult RunRequests(v1::Generation::Stub* stub, const std::vector<v1::GenerateRequest>& requests,
                      const RunOptions& options);

}  // namespace pagedllm::bench
