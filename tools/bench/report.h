// The benchmark's outputs: the text report on stdout, and every printed number as one flat row
// per run (one row offline or online, one per rate in a sweep) for --output_json and
// --output_csv.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "pagedllm/v1/generation.pb.h"
#include "tools/bench/stats.h"

namespace pagedllm::bench {

using Row = nlohmann::ordered_json;  // a flat object: name -> number, string or bool

// What the engine did between two GetStats calls.
struct EngineDelta {
  uint64_t steps = 0;
  uint64_t preemptions = 0;
  uint64_t decode_steps = 0;
  double decode_step_ms = 0;     // mean coordinator round trip of a decode step
  double decode_forward_ms = 0;  // mean time of a decode step on rank 0
  uint64_t prefill_steps = 0;    // the other steps (prefills, chunks, recomputes)
  double prefill_step_ms = 0;
  double prefill_forward_ms = 0;
  uint64_t worker_restarts = 0;
  uint64_t kv_usage_samples = 0;
  double kv_waste_pct = 0;  // of allocated slots holding no token (--kv_usage_stats)
  double kv_mean_blocks_in_use = 0;
  uint64_t prefix_cache_queries = 0;
  uint64_t prefix_cache_hit_tokens = 0;
  uint64_t swapped_out = 0;
  uint64_t swapped_in = 0;
  uint64_t steps_ahead = 0;     // sent before the step before them was back (async scheduling)
  double device_busy_ms = 0;    // rank 0's device time on the steps
  double device_idle_pct = -1;  // its idle share between consecutive steps (-1: unknown)
};

EngineDelta DiffStats(const v1::ServerStats& before, const v1::ServerStats& after);

// The lines "engine: ...", "device: ..." (when timed), "prefill: ..." (when there were any), "KV
// cache: ..." (with
// --kv_usage_stats), "prefix cache: ..." (when queried) and "swaps: ...". `wall_s` gives the mean
// step time.
void PrintEngine(const EngineDelta& engine, const v1::ServerStats& after, double wall_s);

// TTFT, TPOT, ITL and E2E latency: mean, p50, p90, p99 in ms, one line each, under a header.
void PrintLatencyTable(const RunReport& report);

// Appends the report's and the engine's numbers to `row`.
void AddRunReport(const RunReport& report, Row* row);
void AddEngine(const EngineDelta& engine, Row* row);

// The server's description (model, device, sizes) for the JSON output.
nlohmann::ordered_json ServerJson(const v1::ServerStats& stats);

// {"config": ..., "server": ..., "runs": [rows...], extra's keys...} pretty-printed.
absl::Status WriteJson(const std::string& path, const nlohmann::ordered_json& config,
                       const nlohmann::ordered_json& server, const std::vector<Row>& runs,
                       const nlohmann::ordered_json& extra);
// A header of every key (in first-seen order), then one line per row; missing cells are empty.
absl::Status WriteCsv(const std::string& path, const std::vector<Row>& runs);

}  // namespace pagedllm::bench
