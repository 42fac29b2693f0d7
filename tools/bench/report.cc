#include "tools/bench/report.h"

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace pagedllm::bench {
namespace {

void AddSummary(const std::string& name, const Summary& summary, Row* row) {
  (*row)[name + "_mean"] = summary.mean;
  (*row)[name + "_p50"] = summary.p50;
  (*row)[name + "_p90"] = summary.p90;
  (*row)[name + "_p99"] = summary.p99;
}

std::string CsvCell(const nlohmann::ordered_json& value) {
  if (value.is_null()) return "";
  if (!value.is_string()) return value.dump();
  const std::string text = value.get<std::string>();
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

}  // namespace

EngineDelta DiffStats(const v1::ServerStats& before, const v1::ServerStats& after) {
  EngineDelta engine;
  engine.steps = after.num_steps() - before.num_steps();
  engine.preemptions = after.num_preemptions() - before.num_preemptions();
  engine.decode_steps = after.num_decode_steps() - before.num_decode_steps();
  if (engine.decode_steps > 0) {
    engine.decode_step_ms =
        1e-6 * (after.decode_step_ns_total() - before.decode_step_ns_total()) / engine.decode_steps;
    engine.decode_forward_ms =
        1e-6 * (after.decode_forward_ns_total() - before.decode_forward_ns_total()) /
        engine.decode_steps;
  }
  engine.prefill_steps = after.num_prefill_steps() - before.num_prefill_steps();
  if (engine.prefill_steps > 0) {
    engine.prefill_step_ms = 1e-6 *
                             (after.prefill_step_ns_total() - before.prefill_step_ns_total()) /
                             engine.prefill_steps;
    engine.prefill_forward_ms =
        1e-6 * (after.prefill_forward_ns_total() - before.prefill_forward_ns_total()) /
        engine.prefill_steps;
  }
  engine.worker_restarts = after.num_worker_restarts() - before.num_worker_restarts();
  engine.kv_usage_samples = after.kv_usage_samples() - before.kv_usage_samples();
  if (engine.kv_usage_samples > 0) {
    const double allocated = after.kv_slots_allocated_sum() - before.kv_slots_allocated_sum();
    const double filled = after.kv_slots_filled_sum() - before.kv_slots_filled_sum();
    engine.kv_waste_pct = allocated > 0 ? 100.0 * (1.0 - filled / allocated) : 0.0;
    engine.kv_mean_blocks_in_use =
        after.block_size() > 0
            ? allocated / after.block_size() / static_cast<double>(engine.kv_usage_samples)
            : 0.0;
  }
  engine.prefix_cache_queries =
      after.num_prefix_cache_queries() - before.num_prefix_cache_queries();
  engine.prefix_cache_hit_tokens =
      after.num_prefix_cache_hit_tokens() - before.num_prefix_cache_hit_tokens();
  engine.swapped_out = after.num_swapped_out() - before.num_swapped_out();
  engine.swapped_in = after.num_swapped_in() - before.num_swapped_in();
  engine.steps_ahead = after.num_steps_ahead() - before.num_steps_ahead();
  const double busy_ns =
      static_cast<double>(after.device_busy_ns_total() - before.device_busy_ns_total());
  const double idle_ns =
      static_cast<double>(after.device_idle_ns_total() - before.device_idle_ns_total());
  engine.device_busy_ms = 1e-6 * busy_ns;
  if (busy_ns > 0) engine.device_idle_pct = 100.0 * idle_ns / (busy_ns + idle_ns);
  return engine;
}

void PrintEngine(const EngineDelta& engine, const v1::ServerStats& after, double wall_s) {
  std::printf("engine: %lu steps, %.2f ms per step, %lu preemptions\n",
              static_cast<unsigned long>(engine.steps),
              engine.steps ? 1e3 * wall_s / engine.steps : 0.0,
              static_cast<unsigned long>(engine.preemptions));
  if (engine.worker_restarts > 0) {
    std::printf("workers restarted %lu times during the run\n",
                static_cast<unsigned long>(engine.worker_restarts));
  }
  if (engine.device_idle_pct >= 0) {
    std::printf(
        "device: busy %.1f ms per step, idle %.2f%% of the time between steps; %lu of %lu steps "
        "sent ahead (async scheduling)\n",
        engine.steps ? engine.device_busy_ms / engine.steps : 0.0, engine.device_idle_pct,
        static_cast<unsigned long>(engine.steps_ahead), static_cast<unsigned long>(engine.steps));
  }
  if (engine.prefill_steps > 0) {
    std::printf("prefill: %lu steps, %.3f ms per step (worker forward %.3f ms)\n",
                static_cast<unsigned long>(engine.prefill_steps), engine.prefill_step_ms,
                engine.prefill_forward_ms);
  }
  if (engine.kv_usage_samples > 0) {
    std::printf(
        "KV cache: %.2f%% of allocated slots hold no token (mean over %lu steps); "
        "%.1f blocks in use per step on average\n",
        engine.kv_waste_pct, static_cast<unsigned long>(engine.kv_usage_samples),
        engine.kv_mean_blocks_in_use);
  }
  if (engine.prefix_cache_queries > 0) {
    std::printf("prefix cache: %lu of %lu prompt tokens found cached (%.1f%%)\n",
                static_cast<unsigned long>(engine.prefix_cache_hit_tokens),
                static_cast<unsigned long>(engine.prefix_cache_queries),
                100.0 * engine.prefix_cache_hit_tokens / engine.prefix_cache_queries);
  }
  std::printf("swaps: %lu sequences out, %lu in\n", static_cast<unsigned long>(engine.swapped_out),
              static_cast<unsigned long>(engine.swapped_in));
}

void PrintLatencyTable(const RunReport& report) {
  std::printf("%-28s %10s %10s %10s %10s\n", "latency (ms)", "mean", "p50", "p90", "p99");
  const auto line = [](const char* name, const Summary& summary) {
    std::printf("%-28s %10.2f %10.2f %10.2f %10.2f\n", name, summary.mean, summary.p50, summary.p90,
                summary.p99);
  };
  line("TTFT (time to first token)", report.ttft_ms);
  line("TPOT (time per output token)", report.tpot_ms);
  line("ITL (inter-token latency)", report.itl_ms);
  line("E2E (end-to-end latency)", report.e2e_ms);
}

void AddRunReport(const RunReport& report, Row* row) {
  Row& r = *row;
  r["num_requests"] = report.num_requests;
  r["completed"] = report.completed;
  r["failed"] = report.failed;
  r["duration_s"] = report.duration_s;
  r["request_throughput"] = report.request_throughput;
  r["arrival_rate"] = report.arrival_rate;
  r["completion_rate"] = report.completion_rate;
  r["input_tokens"] = report.input_tokens;
  r["output_tokens"] = report.output_tokens;
  r["input_tokens_per_s"] = report.input_tokens_per_s;
  r["output_tokens_per_s"] = report.output_tokens_per_s;
  r["total_tokens_per_s"] = report.total_tokens_per_s;
  AddSummary("ttft_ms", report.ttft_ms, row);
  AddSummary("tpot_ms", report.tpot_ms, row);
  AddSummary("itl_ms", report.itl_ms, row);
  AddSummary("e2e_ms", report.e2e_ms, row);
  r["first_error"] = report.first_error;
}

void AddEngine(const EngineDelta& engine, Row* row) {
  Row& r = *row;
  r["engine_steps"] = engine.steps;
  r["engine_preemptions"] = engine.preemptions;
  r["decode_steps"] = engine.decode_steps;
  r["decode_step_ms"] = engine.decode_step_ms;
  r["decode_forward_ms"] = engine.decode_forward_ms;
  r["prefill_steps"] = engine.prefill_steps;
  r["prefill_step_ms"] = engine.prefill_step_ms;
  r["prefill_forward_ms"] = engine.prefill_forward_ms;
  r["worker_restarts"] = engine.worker_restarts;
  r["kv_usage_samples"] = engine.kv_usage_samples;
  r["kv_waste_pct"] = engine.kv_waste_pct;
  r["kv_mean_blocks_in_use"] = engine.kv_mean_blocks_in_use;
  r["prefix_cache_queries"] = engine.prefix_cache_queries;
  r["prefix_cache_hit_tokens"] = engine.prefix_cache_hit_tokens;
  r["swapped_out"] = engine.swapped_out;
  r["swapped_in"] = engine.swapped_in;
  r["steps_ahead"] = engine.steps_ahead;
  r["device_busy_ms"] = engine.device_busy_ms;
  r["device_idle_pct"] = engine.device_idle_pct;
}

nlohmann::ordered_json ServerJson(const v1::ServerStats& stats) {
  return {{"model", stats.model()},
          {"device", stats.device()},
          {"tp_size", stats.tp_size()},
          {"max_model_len", stats.max_model_len()},
          {"vocab_size", stats.vocab_size()},
          {"block_size", stats.block_size()},
          {"num_total_blocks", stats.num_total_blocks()},
          {"weight_bytes_per_worker", stats.weight_bytes_per_worker()},
          {"kv_bytes_per_token_per_worker", stats.kv_bytes_per_token_per_worker()},
          {"prefix_caching", stats.prefix_caching()},
          {"preemption_mode", stats.preemption_mode()},
          {"max_num_seqs", stats.max_num_seqs()},
          {"max_num_batched_tokens", stats.max_num_batched_tokens()},
          {"async_scheduling", stats.async_scheduling()}};
}

absl::Status WriteJson(const std::string& path, const nlohmann::ordered_json& config,
                       const nlohmann::ordered_json& server, const std::vector<Row>& runs,
                       const nlohmann::ordered_json& extra) {
  nlohmann::ordered_json out = {{"config", config}, {"server", server}, {"runs", runs}};
  for (const auto& [key, value] : extra.items()) out[key] = value;
  std::ofstream file(path);
  // Infinite and NaN numbers have no JSON spelling: they are written as null.
  file << out.dump(2) << '\n';
  file.close();
  if (!file) return absl::DataLossError(absl::StrCat("--output_json ", path, ": write failed"));
  return absl::OkStatus();
}

absl::Status WriteCsv(const std::string& path, const std::vector<Row>& runs) {
  std::vector<std::string> columns;
  for (const Row& row : runs) {
    for (const auto& [key, value] : row.items()) {
      if (std::find(columns.begin(), columns.end(), key) == columns.end()) columns.push_back(key);
    }
  }
  std::ofstream file(path);
  for (size_t i = 0; i < columns.size(); ++i) file << (i ? "," : "") << columns[i];
  file << '\n';
  for (const Row& row : runs) {
    for (size_t i = 0; i < columns.size(); ++i) {
      file << (i ? "," : "") << (row.contains(columns[i]) ? CsvCell(row[columns[i]]) : "");
    }
    file << '\n';
  }
  file.close();
  if (!file) return absl::DataLossError(absl::StrCat("--output_csv ", path, ": write failed"));
  return absl::OkStatus();
}

}  // namespace pagedllm::bench
