// pagedllm-bench: the project's measuring stick, run against a serving coordinator through its
// public gRPC API (in the spirit of vLLM's `bench throughput` and `bench serve`).
//
// Modes (--mode):
//   offline (default): every request at once, at most --concurrency in flight (0: all); prints
//     requests/s, input, output and total tokens/s, and the run's floor (stats.h: the KV and
//     weight bytes every step must read at --memory_gbps, and the GEMM FLOPs at --peak_tflops,
//     on the server's per-worker sizes) with the share of the floor reached (floor / wall time).
//   online: Poisson arrivals at --request_rate requests/s (exponential gaps from --seed; inf: all
//     at once), at most --max_concurrency in flight (0: no cap); prints TTFT, TPOT, ITL and
//     end-to-end latency (mean, p50, p90, p99) and the achieved throughput.
//   sweep: the online run at each of --request_rates (or --sweep_from/--sweep_to/--sweep_steps),
//     same requests, same seed; one table row per rate, the first rate at which latency explodes
//     (p99 TTFT above --ttft_slo_ms, achieved throughput below 90% of the offered rate, or a
//     failed request), and a PNG of p50/p99 TTFT and TPOT against the rate (--plot). The
//     throughput test is vLLM's completed / duration, against the rate the Poisson draws
//     realized (the nominal one differs by ~1/sqrt(num_requests)). A short run, whose arrivals
//     span little more than one request's latency, fails it without overload: the tool says so,
//     and more --num_requests settle it. With prefix caching on the server, every rate after
//     the first finds the prompts cached (a column counts the hits).
// Workloads (--workload), reproducible from --seed:
//   fixed: every request has --prompt_len prompt and --output_len output tokens;
//   sharegpt: lengths drawn per request from log-normal distributions (sigma 1) with the means of
//     the ShareGPT trace in the PagedAttention paper (161 prompt, 338 output tokens), capped so
//     that prompt + output <= --max_len (the shared prefix not counted; each at least 4): a
//     synthetic stand-in with ShareGPT's shape, not the dataset itself;
//   alpaca: the same with the Alpaca trace's means (19 prompt, 58 output tokens);
//   file: --workload_file F.jsonl, one {"prompt_ids": [...], "output_len": N} per line (the first
//     --num_requests lines when given, else all). --save_workload F.jsonl writes the requests
//     generated (prefix included, before --copies) in that format, for other engines to replay.
// Prompts are random token ids in [--vocab_low, --vocab_high); every request generates exactly
// its output length (--ignore_eos, default true).
// Sharing: --n / --best_of / --use_beam_search ask for several sequences per request;
// --copies K sends every request K times as separate requests (the same work without sharing);
// --shared_prefix_len L puts one L-token prefix (a system prompt) before every prompt.
// With the server's --kv_usage_stats it prints the KV waste and the mean blocks in use.
// --output_json / --output_csv write every printed number (one row per run; per rate in a sweep).
// Exit status: 0 when every request succeeded, 1 when any failed or the server could not be
// reached, 2 for a bad flag (the message names it).
//   pagedllm-bench --address localhost:50051 --num_requests 64 --prompt_len 128 --output_len 128
//   pagedllm-bench --mode sweep --workload sharegpt --num_requests 200 --request_rates 1,2,4,8
//     --plot sweep.png --output_csv sweep.csv
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/flags_usage.h"
#include "grpcpp/create_channel.h"
#include "pagedllm/v1/generation.grpc.pb.h"
#include "tools/bench/flag_check.h"
#include "tools/bench/report.h"
#include "tools/bench/runner.h"
#include "tools/bench/stats.h"
#include "tools/bench/sweep.h"
#include "tools/bench/workload.h"

ABSL_FLAG(std::string, address, "localhost:50051", "coordinator address");
ABSL_FLAG(std::string, mode, "offline", "offline, online or sweep (see the file comment)");
ABSL_FLAG(int, num_requests, 64, "requests to send (per rate in a sweep)");
ABSL_FLAG(int, concurrency, 64, "offline: most requests in flight at once (0: all)");
ABSL_FLAG(int, max_concurrency, 0, "online and sweep: most requests in flight (0: no cap)");
ABSL_FLAG(std::string, request_rate, "inf", "online: requests/s, Poisson arrivals (inf: at once)");
ABSL_FLAG(std::string, request_rates, "", "sweep: comma-separated rates, e.g. 2,4,8,16");
ABSL_FLAG(double, sweep_from, 0, "sweep: the lowest rate (instead of --request_rates)");
ABSL_FLAG(double, sweep_to, 0, "sweep: the highest rate");
ABSL_FLAG(int, sweep_steps, 5, "sweep: rates from --sweep_from to --sweep_to");
ABSL_FLAG(std::string, sweep_scale, "linear", "sweep: rates spaced linear or log (geometric)");
ABSL_FLAG(double, ttft_slo_ms, 1000, "sweep: a p99 TTFT above this means latency exploded");
ABSL_FLAG(std::string, plot, "", "sweep: PNG of p50/p99 TTFT and TPOT against the rate");
ABSL_FLAG(int, prompt_len, 128, "fixed: prompt tokens per request");
ABSL_FLAG(int, output_len, 128, "fixed: generated tokens per request");
ABSL_FLAG(int, vocab_low, 3, "prompt ids are drawn from [vocab_low, vocab_high)");
ABSL_FLAG(int, vocab_high, 0, "upper bound of prompt ids (0: the server's vocab size)");
ABSL_FLAG(uint64_t, seed, 1234, "seed of the prompts, lengths, arrivals and sampling");
ABSL_FLAG(std::string, workload, "fixed", "fixed, sharegpt, alpaca or file (see the file comment)");
ABSL_FLAG(std::string, workload_file, "", "--workload file: JSON lines of prompt_ids, output_len");
ABSL_FLAG(std::string, save_workload, "", "write the requests as JSON lines to this file");
ABSL_FLAG(int, max_len, 1024, "sharegpt, alpaca: prompt + output tokens at most (prefix aside)");
ABSL_FLAG(int, n, 1, "choices per request");
ABSL_FLAG(int, best_of, 0, "samples (or beams) per request (0: n)");
ABSL_FLAG(bool, use_beam_search, false, "beam search of width best_of");
ABSL_FLAG(int, copies, 1, "send every request this many times, as separate requests");
ABSL_FLAG(int, shared_prefix_len, 0, "tokens of one prefix put before every prompt");
ABSL_FLAG(double, temperature, 0.0, "sampling temperature (0: greedy)");
ABSL_FLAG(double, top_p, 1.0, "nucleus mass (1: off)");
ABSL_FLAG(int, top_k, 0, "top-k (0: off)");
ABSL_FLAG(bool, ignore_eos, true, "generate every request's full output length");
ABSL_FLAG(double, timeout_s, 0, "deadline of each call in seconds (0: none)");
ABSL_FLAG(double, memory_gbps, 3000.0,
          "device memory bandwidth for the floors (H100: ~3000 GB/s measured by a D2D copy)");
ABSL_FLAG(double, peak_tflops, 700.0,
          "dense bf16 GEMM rate for the floor, TFLOP/s: pass the one measured on the device "
          "(H100 SXM: 989 on paper; 700 is a typical measured cuBLAS rate)");
ABSL_FLAG(double, bytes_per_param, 2.0,
          "weight bytes per parameter for the FLOP floor (2: bf16/fp16; 4: float32)");
ABSL_FLAG(std::string, output_json, "", "write every number as JSON to this file");
ABSL_FLAG(std::string, output_csv, "", "write every number as CSV (one row per run/rate)");
ABSL_FLAG(bool, progress, true, "a progress line on stderr every 2 s");

namespace {

namespace bench = pagedllm::bench;
namespace v1 = pagedllm::v1;

[[noreturn]] void BadFlag(const std::string& message) {
  std::fprintf(stderr, "pagedllm-bench: %s\n", message.c_str());
  std::exit(2);
}

bool Specified(const std::string& name) { return bench::FlagsGiven().count(name) > 0; }

// A rate in requests/s: a positive number, or "inf" when allowed.
absl::StatusOr<double> ParseRate(absl::string_view text, absl::string_view flag, bool allow_inf) {
  if (allow_inf && (text == "inf" || text == "Inf" || text == "INF")) {
    return std::numeric_limits<double>::infinity();
  }
  double rate = 0;
  if (!absl::SimpleAtod(text, &rate) || !std::isfinite(rate) || rate <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " must be a rate > 0 in requests/s",
                                                   allow_inf ? " or inf" : "", ", got '", text,
                                                   "'"));
  }
  return rate;
}

absl::StatusOr<std::vector<double>> SweepRates() {
  std::vector<double> rates;
  const bool range = Specified("sweep_from") || Specified("sweep_to");
  if (!absl::GetFlag(FLAGS_request_rates).empty()) {
    if (range) {
      return absl::InvalidArgumentError(
          "give either --request_rates or --sweep_from/--sweep_to, not both");
    }
    for (absl::string_view text : absl::StrSplit(absl::GetFlag(FLAGS_request_rates), ',')) {
      absl::StatusOr<double> rate = ParseRate(text, "--request_rates", false);
      if (!rate.ok()) return rate.status();
      if (!rates.empty() && *rate <= rates.back()) {
        return absl::InvalidArgumentError(absl::StrCat("--request_rates must be ascending, got ",
                                                       *rate, " after ", rates.back()));
      }
      rates.push_back(*rate);
    }
    return rates;
  }
  const double from = absl::GetFlag(FLAGS_sweep_from), to = absl::GetFlag(FLAGS_sweep_to);
  const int steps = absl::GetFlag(FLAGS_sweep_steps);
  const std::string scale = absl::GetFlag(FLAGS_sweep_scale);
  if (!range) {
    return absl::InvalidArgumentError(
        "--mode sweep needs --request_rates R1,R2,... or --sweep_from and --sweep_to");
  }
  if (!(from > 0) || !std::isfinite(from)) {
    return absl::InvalidArgumentError(absl::StrCat("--sweep_from must be > 0, got ", from));
  }
  if (!(to > from) || !std::isfinite(to)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--sweep_to must be > --sweep_from (", from, "), got ", to));
  }
  if (steps < 2) {
    return absl::InvalidArgumentError(absl::StrCat("--sweep_steps must be >= 2, got ", steps));
  }
  if (scale != "linear" && scale != "log") {
    return absl::InvalidArgumentError(
        absl::StrCat("--sweep_scale must be linear or log, got ", scale));
  }
  for (int i = 0; i < steps; ++i) {
    const double t = static_cast<double>(i) / (steps - 1);
    rates.push_back(scale == "log" ? from * std::pow(to / from, t) : from + t * (to - from));
  }
  return rates;
}

// Everything that can be checked before the server is asked anything.
absl::Status ValidateFlags() {
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode != "offline" && mode != "online" && mode != "sweep") {
    return absl::InvalidArgumentError(
        absl::StrCat("--mode must be offline, online or sweep, got ", mode));
  }
  const auto only_in = [&](absl::string_view flag, absl::string_view modes) -> absl::Status {
    if (Specified(std::string(flag)) && !absl::StrContains(modes, mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, " applies to --mode ", modes, ", not --mode ", mode,
                       flag == "concurrency" ? " (online and sweep: --max_concurrency)" : ""));
    }
    return absl::OkStatus();
  };
  for (const char* flag : {"request_rates", "sweep_from", "sweep_to", "sweep_steps", "sweep_scale",
                           "ttft_slo_ms", "plot"}) {
    if (absl::Status status = only_in(flag, "sweep"); !status.ok()) return status;
  }
  if (absl::Status status = only_in("request_rate", "online"); !status.ok()) return status;
  if (absl::Status status = only_in("max_concurrency", "online sweep"); !status.ok()) return status;
  if (absl::Status status = only_in("concurrency", "offline"); !status.ok()) return status;

  const std::string workload = absl::GetFlag(FLAGS_workload);
  if (workload != "fixed" && workload != "sharegpt" && workload != "alpaca" && workload != "file") {
    return absl::InvalidArgumentError(
        absl::StrCat("--workload must be fixed, sharegpt, alpaca or file, got ", workload));
  }
  if ((workload == "file") != !absl::GetFlag(FLAGS_workload_file).empty()) {
    return absl::InvalidArgumentError("--workload file and --workload_file F go together");
  }
  if (workload == "file" && absl::GetFlag(FLAGS_shared_prefix_len) != 0) {
    return absl::InvalidArgumentError(
        "--shared_prefix_len does not apply to --workload file: its prompts are used as given");
  }
  const auto at_least = [](absl::string_view flag, double value, double low) -> absl::Status {
    if (value >= low) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " must be >= ", low, ", got ", value));
  };
  const auto positive = [](absl::string_view flag, double value) -> absl::Status {
    if (value > 0 && std::isfinite(value)) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " must be > 0, got ", value));
  };
  for (const absl::Status& status : {
           at_least("num_requests", absl::GetFlag(FLAGS_num_requests), 1),
           at_least("concurrency", absl::GetFlag(FLAGS_concurrency), 0),
           at_least("max_concurrency", absl::GetFlag(FLAGS_max_concurrency), 0),
           at_least("n", absl::GetFlag(FLAGS_n), 1),
           at_least("best_of", absl::GetFlag(FLAGS_best_of), 0),
           at_least("copies", absl::GetFlag(FLAGS_copies), 1),
           at_least("shared_prefix_len", absl::GetFlag(FLAGS_shared_prefix_len), 0),
           at_least("temperature", absl::GetFlag(FLAGS_temperature), 0),
           at_least("top_k", absl::GetFlag(FLAGS_top_k), 0),
           at_least("timeout_s", absl::GetFlag(FLAGS_timeout_s), 0),
           positive("memory_gbps", absl::GetFlag(FLAGS_memory_gbps)),
           positive("peak_tflops", absl::GetFlag(FLAGS_peak_tflops)),
           positive("bytes_per_param", absl::GetFlag(FLAGS_bytes_per_param)),
           positive("ttft_slo_ms", absl::GetFlag(FLAGS_ttft_slo_ms)),
       }) {
    if (!status.ok()) return status;
  }
  const double top_p = absl::GetFlag(FLAGS_top_p);
  if (!(top_p > 0 && top_p <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("--top_p must be in (0, 1], got ", top_p));
  }
  const int best_of = absl::GetFlag(FLAGS_best_of);
  if (best_of > 0 && best_of < absl::GetFlag(FLAGS_n)) {
    return absl::InvalidArgumentError(absl::StrCat("--best_of must be 0 or >= --n (",
                                                   absl::GetFlag(FLAGS_n), "), got ", best_of));
  }
  if (mode == "online") {
    absl::StatusOr<double> rate = ParseRate(absl::GetFlag(FLAGS_request_rate), "--request_rate",
                                            /*allow_inf=*/true);
    if (!rate.ok()) return rate.status();
  }
  if (mode == "sweep") {
    absl::StatusOr<std::vector<double>> rates = SweepRates();
    if (!rates.ok()) return rates.status();
  }
  // Output files are opened now, so that a typo does not cost a whole run.
  for (const auto& [flag, path] :
       {std::pair<const char*, std::string>{"output_json", absl::GetFlag(FLAGS_output_json)},
        {"output_csv", absl::GetFlag(FLAGS_output_csv)},
        {"plot", absl::GetFlag(FLAGS_plot)},
        {"save_workload", absl::GetFlag(FLAGS_save_workload)}}) {
    if (path.empty()) continue;
    if (!std::ofstream(path, std::ios::app)) {
      return absl::InvalidArgumentError(absl::StrCat("--", flag, " ", path, ": cannot be written"));
    }
  }
  return absl::OkStatus();
}

// Every flag of this tool with its value, for the JSON output.
nlohmann::ordered_json ConfigJson() {
  std::vector<std::pair<std::string, std::string>> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (absl::StrContains(flag->Filename(), "tools/bench/")) {
      flags.emplace_back(std::string(name), flag->CurrentValue());
    }
  }
  std::sort(flags.begin(), flags.end());
  nlohmann::ordered_json config = nlohmann::ordered_json::object();
  for (const auto& [name, value] : flags) config[name] = value;
  return config;
}

absl::StatusOr<v1::ServerStats> GetStats(v1::Generation::Stub* stub) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::ServerStats stats;
  const grpc::Status status = stub->GetStats(&context, {}, &stats);
  if (!status.ok()) {
    return absl::UnavailableError(
        absl::StrCat("GetStats on ", absl::GetFlag(FLAGS_address), ": ", status.error_message()));
  }
  return stats;
}

// The workload's requests, before --copies.
absl::StatusOr<std::vector<bench::BenchRequest>> MakeRequests(const v1::ServerStats& server) {
  if (absl::GetFlag(FLAGS_workload) == "file") {
    absl::StatusOr<std::vector<bench::BenchRequest>> requests =
        bench::ReadWorkloadFile(absl::GetFlag(FLAGS_workload_file), server.vocab_size());
    if (!requests.ok()) return requests.status();
    if (Specified("num_requests")) {
      const size_t wanted = absl::GetFlag(FLAGS_num_requests);
      if (requests->size() < wanted) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--num_requests ", wanted, ": --workload_file has only ", requests->size()));
      }
      requests->resize(wanted);
    }
    return requests;
  }
  bench::WorkloadOptions options;
  options.kind = absl::GetFlag(FLAGS_workload);
  options.num_requests = absl::GetFlag(FLAGS_num_requests);
  options.prompt_len = absl::GetFlag(FLAGS_prompt_len);
  options.output_len = absl::GetFlag(FLAGS_output_len);
  options.max_len = absl::GetFlag(FLAGS_max_len);
  options.shared_prefix_len = absl::GetFlag(FLAGS_shared_prefix_len);
  options.vocab_low = absl::GetFlag(FLAGS_vocab_low);
  options.vocab_high =
      absl::GetFlag(FLAGS_vocab_high) > 0 ? absl::GetFlag(FLAGS_vocab_high) : server.vocab_size();
  options.seed = absl::GetFlag(FLAGS_seed);
  return bench::MakeWorkload(options);
}

// The requests as sent: every request's --copies one after another, each with its own seed.
std::vector<v1::GenerateRequest> ToProto(const std::vector<bench::BenchRequest>& distinct) {
  const int copies = absl::GetFlag(FLAGS_copies);
  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  std::vector<v1::GenerateRequest> requests;
  requests.reserve(distinct.size() * copies);
  for (size_t r = 0; r < distinct.size(); ++r) {
    v1::GenerateRequest request;
    request.mutable_token_ids()->mutable_ids()->Add(distinct[r].prompt_ids.begin(),
                                                    distinct[r].prompt_ids.end());
    v1::SamplingParams* sampling = request.mutable_sampling();
    sampling->set_max_tokens(distinct[r].output_len);
    sampling->set_ignore_eos(absl::GetFlag(FLAGS_ignore_eos));
    sampling->set_n(absl::GetFlag(FLAGS_n));
    if (absl::GetFlag(FLAGS_best_of) > 0) sampling->set_best_of(absl::GetFlag(FLAGS_best_of));
    if (absl::GetFlag(FLAGS_use_beam_search)) {
      sampling->set_use_beam_search(true);
    } else {
      sampling->set_temperature(static_cast<float>(absl::GetFlag(FLAGS_temperature)));
      sampling->set_top_p(static_cast<float>(absl::GetFlag(FLAGS_top_p)));
      sampling->set_top_k(absl::GetFlag(FLAGS_top_k));
    }
    for (int c = 0; c < copies; ++c) {
      sampling->set_seed(seed + r * copies + c);
      requests.push_back(request);
    }
  }
  return requests;
}

// What every mode prints first; failed < 0 leaves the failures out (a sweep counts them per rate).
void PrintHeader(const v1::ServerStats& server, const std::vector<v1::GenerateRequest>& requests,
                 int failed, const std::string& in_flight) {
  double prompt_tokens = 0, output_tokens = 0;
  for (const v1::GenerateRequest& request : requests) {
    prompt_tokens += request.token_ids().ids_size();
    output_tokens += request.sampling().max_tokens();
  }
  const double count = std::max<size_t>(1, requests.size());
  std::printf("device %s\n", server.device().c_str());
  std::printf(
      "model %s, tp %d, %zu requests%s, workload %s: %.1f prompt and %.1f output tokens per "
      "request, %s\n",
      server.model().c_str(), server.tp_size(), requests.size(),
      failed >= 0 ? absl::StrCat(" (", failed, " failed)").c_str() : "",
      absl::GetFlag(FLAGS_workload).c_str(), prompt_tokens / count, output_tokens / count,
      in_flight.c_str());
}

void PrintFirstError(const bench::RunReport& report) {
  if (report.failed > 0) {
    std::printf("%d requests failed; the first: %s\n", report.failed, report.first_error.c_str());
  }
}

int RunOffline(v1::Generation::Stub* stub, const v1::ServerStats& before,
               const std::vector<v1::GenerateRequest>& requests, std::vector<bench::Row>* rows) {
  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  bench::RunOptions options;
  options.max_in_flight = concurrency;
  options.timeout_s = absl::GetFlag(FLAGS_timeout_s);
  options.progress = absl::GetFlag(FLAGS_progress);
  options.progress_label = "offline";
  const bench::RunResult result = bench::RunRequests(stub, requests, options);
  const absl::StatusOr<v1::ServerStats> after_or = GetStats(stub);
  if (!after_or.ok()) {
    std::fprintf(stderr, "pagedllm-bench: %s (the engine's counts are left out)\n",
                 std::string(after_or.status().message()).c_str());
  }
  const v1::ServerStats after = after_or.ok() ? *after_or : before;
  const bench::EngineDelta engine = bench::DiffStats(before, after);
  const bench::RunReport report = bench::Analyze(result.records, result.wall_s);
  const double wall_s = result.wall_s;
  const int in_flight =
      concurrency > 0 ? std::min<int>(concurrency, requests.size()) : requests.size();

  PrintHeader(after, requests, report.failed,
              concurrency > 0 ? absl::StrCat("concurrency ", concurrency)
                              : absl::StrCat("concurrency 0 (all ", requests.size(), ")"));
  std::printf(
      "wall %.3f s: %.2f requests/s, %.1f output tokens/s, %.1f input tokens/s, %.1f total "
      "tokens/s\n",
      wall_s, report.request_throughput, report.output_tokens_per_s, report.input_tokens_per_s,
      report.total_tokens_per_s);
  std::printf("per worker (GPU): %.1f output tokens/s\n",
              report.output_tokens_per_s / std::max(1, after.tp_size()));

  // The floor of the work done: completed requests, with the token positions they received.
  bench::FloorInputs inputs;
  for (const bench::RequestRecord& record : result.records) {
    if (record.ok) inputs.requests.push_back({record.prompt_len, record.steps});
  }
  inputs.sequences_per_request =
      absl::GetFlag(FLAGS_best_of) > 0 ? absl::GetFlag(FLAGS_best_of) : absl::GetFlag(FLAGS_n);
  inputs.concurrency = concurrency;
  inputs.weight_bytes_per_worker = after.weight_bytes_per_worker();
  inputs.kv_bytes_per_token_per_worker = after.kv_bytes_per_token_per_worker();
  inputs.bytes_per_param = absl::GetFlag(FLAGS_bytes_per_param);
  inputs.skipped_prompt_tokens = engine.prefix_cache_hit_tokens;
  inputs.memory_gbps = absl::GetFlag(FLAGS_memory_gbps);
  inputs.peak_tflops = absl::GetFlag(FLAGS_peak_tflops);
  const bench::Floor floor = bench::ComputeFloor(inputs);
  const double share = wall_s > 0 && report.completed > 0 ? floor.time_s / wall_s : 0.0;
  const double floor_requests_per_s = floor.time_s > 0 ? report.completed / floor.time_s : 0.0;
  if (report.completed == 0) {
    std::printf("floor: no request completed\n");
  } else {
    std::printf(
        "floor %.4g s: %.2f requests/s (%s-bound); share of the floor %.4g (floor time / wall "
        "time: this run took %.1fx the floor)\n",
        floor.time_s, floor_requests_per_s, floor.compute_bound ? "compute" : "memory", share,
        share > 0 ? 1.0 / share : 0.0);
    std::printf(
        "  memory:  %.4g s = (%.3f GB of KV reads + %ld steps x %.3f GB of weights) per worker at "
        "%.0f GB/s\n",
        floor.memory_s, floor.kv_bytes / 1e9, static_cast<long>(floor.steps),
        after.weight_bytes_per_worker() / 1e9, inputs.memory_gbps);
    std::printf(
        "  compute: %.4g s = 2 x %.3gM params x %ld tokens = %.4g TFLOP per worker at %.0f "
        "TFLOP/s\n",
        floor.compute_s, floor.params_per_worker / 1e6, static_cast<long>(floor.gemm_tokens),
        floor.gemm_flops / 1e12, inputs.peak_tflops);
    std::printf(
        "  assuming params = weight bytes / %g (--bytes_per_param; 2 = bf16), GEMM FLOPs only "
        "(ServerStats has no layer or head counts for attention), the token positions received%s\n",
        inputs.bytes_per_param,
        engine.prefix_cache_hit_tokens > 0 ? ", prefix-cache hits not computed" : "");
  }
  bench::PrintEngine(engine, after, wall_s);
  // Floor of one decode step (the earlier per-step figure, which scripts read): every weight
  // byte and every cached K/V byte read once per step, at the full batch and the mean context
  // (prompt + output / 2). Only for fixed lengths: otherwise the batch shrinks as requests end.
  if (engine.decode_steps > 0) {
    double prompt_tokens = 0, planned_output = 0;
    for (const v1::GenerateRequest& request : requests) {
      prompt_tokens += request.token_ids().ids_size();
      planned_output += request.sampling().max_tokens();
    }
    // The server runs at most max_num_seqs at once (later waves may be smaller).
    const double batch = after.max_num_seqs() > 0
                             ? std::min<double>(in_flight, after.max_num_seqs())
                             : static_cast<double>(in_flight);
    const double context = (prompt_tokens + planned_output / 2.0) / requests.size();
    const double bytes =
        after.weight_bytes_per_worker() + batch * context * after.kv_bytes_per_token_per_worker();
    const double step_floor_ms = 1e3 * bytes / (inputs.memory_gbps * 1e9);
    if (absl::GetFlag(FLAGS_workload) == "fixed") {
      std::printf(
          "decode: %lu steps, %.3f ms per step (worker forward %.3f ms); floor %.3f ms "
          "(%.2f GB weights + KV of %.0f seqs x %.0f tokens per worker at %.0f GB/s): %.2fx\n",
          static_cast<unsigned long>(engine.decode_steps), engine.decode_step_ms,
          engine.decode_forward_ms, step_floor_ms, after.weight_bytes_per_worker() / 1e9, batch,
          context, inputs.memory_gbps,
          step_floor_ms > 0 ? engine.decode_step_ms / step_floor_ms : 0.0);
    } else {
      std::printf("decode: %lu steps, %.3f ms per step (worker forward %.3f ms)\n",
                  static_cast<unsigned long>(engine.decode_steps), engine.decode_step_ms,
                  engine.decode_forward_ms);
    }
  }
  std::printf("time to first token: p50 %.3f s, p99 %.3f s; latency: p50 %.3f s, p99 %.3f s\n",
              report.ttft_ms.p50 / 1e3, report.ttft_ms.p99 / 1e3, report.e2e_ms.p50 / 1e3,
              report.e2e_ms.p99 / 1e3);
  bench::PrintLatencyTable(report);
  PrintFirstError(report);

  bench::Row row;
  row["mode"] = "offline";
  row["concurrency"] = concurrency;
  bench::AddRunReport(report, &row);
  row["output_tokens_per_s_per_worker"] = report.output_tokens_per_s / std::max(1, after.tp_size());
  row["floor_s"] = floor.time_s;
  row["floor_requests_per_s"] = floor_requests_per_s;
  row["share_of_floor"] = share;
  row["floor_bound"] = floor.compute_bound ? "compute" : "memory";
  row["floor_memory_s"] = floor.memory_s;
  row["floor_kv_bytes"] = floor.kv_bytes;
  row["floor_steps"] = floor.steps;
  row["floor_weight_bytes"] = floor.weight_bytes;
  row["floor_compute_s"] = floor.compute_s;
  row["floor_params_per_worker"] = floor.params_per_worker;
  row["floor_gemm_tokens"] = floor.gemm_tokens;
  row["floor_gemm_flops"] = floor.gemm_flops;
  bench::AddEngine(engine, &row);
  rows->push_back(std::move(row));
  return report.failed == 0 ? 0 : 1;
}

// One online run at `rate`; prints nothing but progress.
struct OnlineRun {
  bench::RunReport report;
  bench::EngineDelta engine;
  v1::ServerStats after;
};

OnlineRun RunOnlineAt(v1::Generation::Stub* stub, const v1::ServerStats& before,
                      const std::vector<v1::GenerateRequest>& requests, double rate,
                      const std::string& label) {
  bench::RunOptions options;
  options.arrivals_s = bench::PoissonArrivals(requests.size(), rate, absl::GetFlag(FLAGS_seed));
  options.max_in_flight = absl::GetFlag(FLAGS_max_concurrency);
  options.timeout_s = absl::GetFlag(FLAGS_timeout_s);
  options.progress = absl::GetFlag(FLAGS_progress);
  options.progress_label = label;
  const bench::RunResult result = bench::RunRequests(stub, requests, options);
  OnlineRun run;
  const absl::StatusOr<v1::ServerStats> after = GetStats(stub);
  if (!after.ok()) {
    std::fprintf(stderr, "pagedllm-bench: %s (the engine's counts are left out)\n",
                 std::string(after.status().message()).c_str());
  }
  run.after = after.ok() ? *after : before;
  run.engine = bench::DiffStats(before, run.after);
  run.report = bench::Analyze(result.records, result.wall_s);
  return run;
}

std::string RateText(double rate) {
  return std::isinf(rate) ? std::string("inf") : absl::StrCat(rate);
}

bench::Row OnlineRow(const std::string& mode, double rate, const OnlineRun& run) {
  bench::Row row;
  row["mode"] = mode;
  if (std::isinf(rate)) {
    row["request_rate"] = "inf";
  } else {
    row["request_rate"] = rate;
  }
  row["max_concurrency"] = absl::GetFlag(FLAGS_max_concurrency);
  bench::AddRunReport(run.report, &row);
  bench::AddEngine(run.engine, &row);
  return row;
}

std::string MaxConcurrencyText() {
  const int cap = absl::GetFlag(FLAGS_max_concurrency);
  return cap > 0 ? absl::StrCat("max concurrency ", cap) : std::string("no concurrency cap");
}

int RunOnline(v1::Generation::Stub* stub, const v1::ServerStats& before,
              const std::vector<v1::GenerateRequest>& requests, std::vector<bench::Row>* rows) {
  const double rate = *ParseRate(absl::GetFlag(FLAGS_request_rate), "--request_rate", true);
  const OnlineRun run = RunOnlineAt(stub, before, requests, rate, "rate " + RateText(rate));
  const bench::RunReport& report = run.report;
  PrintHeader(run.after, requests, report.failed, MaxConcurrencyText());
  std::printf("online: %s requests/s offered (Poisson arrivals, seed %lu)\n",
              RateText(rate).c_str(), static_cast<unsigned long>(absl::GetFlag(FLAGS_seed)));
  std::printf(
      "duration %.3f s: %.2f requests/s achieved, %.1f output tokens/s, %.1f input tokens/s, "
      "%.1f total tokens/s\n",
      report.duration_s, report.request_throughput, report.output_tokens_per_s,
      report.input_tokens_per_s, report.total_tokens_per_s);
  if (report.arrival_rate > 0) {
    std::printf(
        "keeping up: %.2f requests/s arrived, %.2f requests/s completed (fitted: completion "
        "against arrival times)\n",
        report.arrival_rate, report.completion_rate);
  }
  bench::PrintLatencyTable(report);
  bench::PrintEngine(run.engine, run.after, report.duration_s);
  PrintFirstError(report);
  rows->push_back(OnlineRow("online", rate, run));
  return report.failed == 0 ? 0 : 1;
}

int RunSweep(v1::Generation::Stub* stub, const v1::ServerStats& first_stats,
             const std::vector<v1::GenerateRequest>& requests, std::vector<bench::Row>* rows,
             nlohmann::ordered_json* extra) {
  const std::vector<double> rates = *SweepRates();
  const double slo_ms = absl::GetFlag(FLAGS_ttft_slo_ms);
  PrintHeader(first_stats, requests, -1, MaxConcurrencyText());
  std::printf("sweep: %zu rates, Poisson arrivals (seed %lu), TTFT SLO %g ms\n", rates.size(),
              static_cast<unsigned long>(absl::GetFlag(FLAGS_seed)), slo_ms);
  if (first_stats.prefix_caching()) {
    std::printf(
        "note: the server caches prefixes, so every rate after the first finds these prompts "
        "cached (column 'cached'); --enable_prefix_caching=false on the server keeps the rates "
        "comparable\n");
  }
  // achieved: completed / duration; arrived, done: the rates requests arrived and completed at
  // (stats.h: RunReport::arrival_rate, completion_rate).
  std::printf("%8s %8s %8s %8s %10s %9s %9s %9s %9s %9s %9s %6s %7s\n", "rate", "achieved",
              "arrived", "done", "out tok/s", "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99",
              "ITL p99", "E2E p99", "failed", "cached");
  std::fflush(stdout);
  std::vector<bench::RunReport> reports;
  double explodes_at = std::nan("");
  std::string reason;
  std::string first_error;
  v1::ServerStats before = first_stats;
  for (size_t i = 0; i < rates.size(); ++i) {
    const OnlineRun run =
        RunOnlineAt(stub, before, requests, rates[i],
                    absl::StrCat("rate ", RateText(rates[i]), " (", i + 1, "/", rates.size(), ")"));
    before = run.after;
    const bench::RunReport& r = run.report;
    const double cached_pct =
        run.engine.prefix_cache_queries > 0
            ? 100.0 * run.engine.prefix_cache_hit_tokens / run.engine.prefix_cache_queries
            : 0.0;
    std::printf("%8.4g %8.2f %8.2f %8.2f %10.1f %9.1f %9.1f %9.2f %9.2f %9.2f %9.1f %6d %6.1f%%\n",
                rates[i], r.request_throughput, r.arrival_rate, r.completion_rate,
                r.output_tokens_per_s, r.ttft_ms.p50, r.ttft_ms.p99, r.tpot_ms.p50, r.tpot_ms.p99,
                r.itl_ms.p99, r.e2e_ms.p99, r.failed, cached_pct);
    std::fflush(stdout);
    const std::string why = bench::Explosion(r, rates[i], slo_ms);
    if (!why.empty() && std::isnan(explodes_at)) {
      explodes_at = rates[i];
      reason = why;
    }
    if (first_error.empty()) first_error = r.first_error;
    bench::Row row = OnlineRow("sweep", rates[i], run);
    row["within_slo"] = why.empty();
    row["slo_violation"] = why;
    rows->push_back(std::move(row));
    reports.push_back(r);
  }
  if (std::isnan(explodes_at)) {
    std::printf(
        "latency stays within the SLO up to rate %g requests/s (p99 TTFT <= %g ms, completions "
        "keep up with arrivals, no failures)\n",
        rates.back(), slo_ms);
    (*extra)["explodes_at_rate"] = nullptr;
  } else {
    std::printf("latency explodes at rate %g requests/s: %s\n", explodes_at, reason.c_str());
    (*extra)["explodes_at_rate"] = explodes_at;
    (*extra)["explodes_reason"] = reason;
  }
  if (!first_error.empty()) std::printf("first error: %s\n", first_error.c_str());
  int exit_code = 0;
  for (const bench::RunReport& report : reports) exit_code |= report.failed > 0;
  if (!absl::GetFlag(FLAGS_plot).empty()) {
    const absl::Status written =
        bench::WriteSweepPlot(absl::GetFlag(FLAGS_plot), rates, reports, slo_ms, explodes_at);
    if (written.ok()) {
      std::printf("plot: %s\n", absl::GetFlag(FLAGS_plot).c_str());
    } else {
      std::fprintf(stderr, "pagedllm-bench: %s\n", written.ToString().c_str());
      exit_code = 1;
    }
  }
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  pagedllm::SetFlagsUsage(
      "pagedllm-bench --address HOST:PORT [--mode offline|online|sweep] [--num_requests N ...]");
  if (absl::Status syntax = bench::CheckFlagSyntax(argc, argv); !syntax.ok()) {
    BadFlag(std::string(syntax.message()));
  }
  const std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) BadFlag(absl::StrCat("unexpected argument '", positional[1], "'"));
  if (absl::Status valid = ValidateFlags(); !valid.ok()) BadFlag(std::string(valid.message()));

  auto channel =
      grpc::CreateChannel(absl::GetFlag(FLAGS_address), grpc::InsecureChannelCredentials());
  auto stub = v1::Generation::NewStub(channel);
  const absl::StatusOr<v1::ServerStats> before = GetStats(stub.get());
  if (!before.ok()) {
    std::fprintf(stderr, "pagedllm-bench: %s\n", std::string(before.status().message()).c_str());
    return 1;
  }
  const absl::StatusOr<std::vector<bench::BenchRequest>> distinct = MakeRequests(*before);
  if (!distinct.ok()) BadFlag(std::string(distinct.status().message()));
  if (!absl::GetFlag(FLAGS_save_workload).empty()) {
    const absl::Status saved =
        bench::WriteWorkloadFile(absl::GetFlag(FLAGS_save_workload), *distinct);
    if (!saved.ok()) {
      std::fprintf(stderr, "pagedllm-bench: %s\n", std::string(saved.message()).c_str());
      return 1;
    }
    std::fprintf(stderr, "pagedllm-bench: %zu requests written to %s\n", distinct->size(),
                 absl::GetFlag(FLAGS_save_workload).c_str());
  }
  const std::vector<v1::GenerateRequest> requests = ToProto(*distinct);

  std::vector<bench::Row> rows;
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
  const std::string mode = absl::GetFlag(FLAGS_mode);
  int exit_code = 0;
  if (mode == "offline") {
    exit_code = RunOffline(stub.get(), *before, requests, &rows);
  } else if (mode == "online") {
    exit_code = RunOnline(stub.get(), *before, requests, &rows);
  } else {
    exit_code = RunSweep(stub.get(), *before, requests, &rows, &extra);
  }
  if (!absl::GetFlag(FLAGS_output_json).empty()) {
    const absl::Status written = bench::WriteJson(absl::GetFlag(FLAGS_output_json), ConfigJson(),
                                                  bench::ServerJson(*before), rows, extra);
    if (!written.ok()) {
      std::fprintf(stderr, "pagedllm-bench: %s\n", std::string(written.message()).c_str());
      exit_code = 1;
    }
  }
  if (!absl::GetFlag(FLAGS_output_csv).empty()) {
    const absl::Status written = bench::WriteCsv(absl::GetFlag(FLAGS_output_csv), rows);
    if (!written.ok()) {
      std::fprintf(stderr, "pagedllm-bench: %s\n", std::string(written.message()).c_str());
      exit_code = 1;
    }
  }
  return exit_code;
}
