// The rate sweep's verdict and picture: at which rate latency explodes, and the PNG of p50/p99
// TTFT and TPOT against the rate.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tools/bench/stats.h"

namespace pagedllm::bench {

// Why the run at `rate` counts as exploded; empty when it does not. In order: a failed request;
// p99 TTFT above slo_ms; achieved throughput (completed / duration, as vLLM reports it) below 90%
// of the offered rate, taken as the arrivals realized it (RunReport::arrival_rate; the nominal
// rate when all came at once). A short run fails the last test without overload (its last
// requests drain after the arrivals end): when its arrivals span less than 10 p50 E2E latencies
// and the completions kept pace with the arrivals (RunReport::completion_rate), the reason says
// so and asks for more requests.
std::string Explosion(const RunReport& report, double rate, double slo_ms);

// Two panels, TTFT and TPOT (ms) against the rate: p50 and p99 each, the SLO as a dashed line on
// the TTFT panel, and a dashed "explodes" line at explodes_at unless it is NaN. reports[i] was
// run at rates[i].
absl::Status WriteSweepPlot(const std::string& path, const std::vector<double>& rates,
                            const std::vector<RunReport>& reports, double slo_ms,
                            double explodes_at);

}  // namespace pagedllm::bench
