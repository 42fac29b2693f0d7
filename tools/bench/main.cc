// pagedllm-bench: offline-throughput and latency benchmark against a running coordinator.
// Sends --num_requests requests of random prompt token ids (fixed seed), at most --concurrency
// in flight, each generating exactly its output length (ignore_eos), and prints throughput and
// latency percentiles, plus the server's step count.
//   --workload fixed (default): every request has --prompt_len and --output_len tokens;
//   --workload sharegpt: lengths drawn per request from log-normal distributions with the means
//     of the ShareGPT trace in the PagedAttention paper (161 prompt, 338 output tokens; sigma 1),
//     clipped to [4, --max_len / 2] each: a synthetic stand-in with ShareGPT's shape, not the
//     dataset itself.
//   --workload alpaca: the same with the Alpaca trace's means (19 prompt, 58 output tokens).
// Sharing: --n / --best_of / --use_beam_search ask for several sequences per request;
// --copies K sends every request K times as separate requests (the same work without sharing);
// --shared_prefix_len L puts one L-token prefix (a system prompt) before every prompt.
// With the server's --kv_usage_stats it prints the KV waste and the mean blocks in use.
//   pagedllm-bench --address localhost:50051 --num_requests 64 --prompt_len 128 --output_len 128
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/flags_usage.h"
#include "grpcpp/create_channel.h"
#include "pagedllm/v1/generation.grpc.pb.h"

ABSL_FLAG(std::string, address, "localhost:50051", "coordinator address");
ABSL_FLAG(int, num_requests, 64, "requests to send");
ABSL_FLAG(int, concurrency, 64, "most requests in flight at once");
ABSL_FLAG(int, prompt_len, 128, "prompt tokens per request");
ABSL_FLAG(int, output_len, 128, "generated tokens per request");
ABSL_FLAG(int, vocab_low, 3, "prompt ids are drawn from [vocab_low, vocab_high)");
ABSL_FLAG(int, vocab_high, 0, "upper bound of prompt ids (0: the server's vocab size)");
ABSL_FLAG(uint64_t, seed, 1234, "seed of the prompts");
ABSL_FLAG(std::string, workload, "fixed", "fixed, sharegpt or alpaca (see the file comment)");
ABSL_FLAG(int, n, 1, "choices per request");
ABSL_FLAG(int, best_of, 0, "samples (or beams) per request (0: n)");
ABSL_FLAG(bool, use_beam_search, false, "beam search of width best_of");
ABSL_FLAG(int, copies, 1, "send every request this many times, as separate requests");
ABSL_FLAG(int, shared_prefix_len, 0, "tokens of one prefix put before every prompt");
ABSL_FLAG(int, max_len, 2048, "sharegpt: prompt and output are each at most max_len / 2");
ABSL_FLAG(double, temperature, 0.0, "sampling temperature (0: greedy)");
ABSL_FLAG(double, top_p, 1.0, "nucleus mass (1: off)");
ABSL_FLAG(int, top_k, 0, "top-k (0: off)");
ABSL_FLAG(double, memory_gbps, 3000.0,
          "device memory bandwidth for the decode floor (H100: ~3000 GB/s measured by a D2D copy)");

namespace {

using Clock = std::chrono::steady_clock;

struct RequestTiming {
  double first_token_s = 0;
  double total_s = 0;
  int tokens = 0;
  bool ok = false;
};

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<size_t>(p * values.size()))];
}

}  // namespace

int main(int argc, char** argv) {
  pagedllm::SetFlagsUsage("pagedllm-bench --address HOST:PORT [--num_requests N ...]");
  absl::ParseCommandLine(argc, argv);
  auto channel =
      grpc::CreateChannel(absl::GetFlag(FLAGS_address), grpc::InsecureChannelCredentials());
  auto stub = pagedllm::v1::Generation::NewStub(channel);

  pagedllm::v1::ServerStats before;
  {
    grpc::ClientContext context;
    const grpc::Status status = stub->GetStats(&context, {}, &before);
    if (!status.ok()) {
      std::fprintf(stderr, "GetStats: %s\n", status.error_message().c_str());
      return 1;
    }
  }
  const int vocab_high =
      absl::GetFlag(FLAGS_vocab_high) > 0 ? absl::GetFlag(FLAGS_vocab_high) : before.vocab_size();
  const int num_requests = absl::GetFlag(FLAGS_num_requests);
  std::mt19937_64 rng(absl::GetFlag(FLAGS_seed));
  std::uniform_int_distribution<int> token(absl::GetFlag(FLAGS_vocab_low), vocab_high - 1);
  const std::string workload = absl::GetFlag(FLAGS_workload);
  if (workload != "fixed" && workload != "sharegpt" && workload != "alpaca") {
    std::fprintf(stderr, "--workload must be fixed, sharegpt or alpaca, got %s\n",
                 workload.c_str());
    return 2;
  }
  const bool alpaca = workload == "alpaca";
  // Log-normal with sigma 1 has mean exp(mu + 1/2): mu = ln(mean) - 1/2.
  std::lognormal_distribution<double> prompt_dist(std::log(alpaca ? 19.0 : 161.0) - 0.5, 1.0);
  std::lognormal_distribution<double> output_dist(std::log(alpaca ? 58.0 : 338.0) - 0.5, 1.0);
  std::vector<int32_t> shared_prefix(std::max(0, absl::GetFlag(FLAGS_shared_prefix_len)));
  for (int32_t& id : shared_prefix) id = token(rng);
  const int length_cap = std::max(4, absl::GetFlag(FLAGS_max_len) / 2);
  const auto draw = [&](std::lognormal_distribution<double>& dist) {
    return static_cast<int>(std::clamp(std::lround(dist(rng)), 4L, static_cast<long>(length_cap)));
  };
  const int copies = std::max(1, absl::GetFlag(FLAGS_copies));
  const int num_distinct = num_requests;
  const int num_sent = num_distinct * copies;
  std::vector<pagedllm::v1::GenerateRequest> requests(num_distinct);
  long prompt_tokens = 0, planned_output_tokens = 0;
  for (size_t r = 0; r < requests.size(); ++r) {
    pagedllm::v1::GenerateRequest& request = requests[r];
    const bool sharegpt = workload == "sharegpt" || alpaca;
    const int prompt_len = sharegpt ? draw(prompt_dist) : absl::GetFlag(FLAGS_prompt_len);
    const int output_len = sharegpt ? draw(output_dist) : absl::GetFlag(FLAGS_output_len);
    prompt_tokens += prompt_len;
    planned_output_tokens += output_len;
    for (int32_t id : shared_prefix) request.mutable_token_ids()->add_ids(id);
    prompt_tokens += static_cast<long>(shared_prefix.size());
    for (int i = 0; i < prompt_len; ++i) request.mutable_token_ids()->add_ids(token(rng));
    request.mutable_sampling()->set_max_tokens(output_len);
    request.mutable_sampling()->set_temperature(
        static_cast<float>(absl::GetFlag(FLAGS_temperature)));
    request.mutable_sampling()->set_top_p(static_cast<float>(absl::GetFlag(FLAGS_top_p)));
    request.mutable_sampling()->set_top_k(absl::GetFlag(FLAGS_top_k));
    request.mutable_sampling()->set_seed(absl::GetFlag(FLAGS_seed) + r);
    request.mutable_sampling()->set_ignore_eos(true);
    request.mutable_sampling()->set_n(absl::GetFlag(FLAGS_n));
    if (absl::GetFlag(FLAGS_best_of) > 0) {
      request.mutable_sampling()->set_best_of(absl::GetFlag(FLAGS_best_of));
    }
    if (absl::GetFlag(FLAGS_use_beam_search)) {
      request.mutable_sampling()->clear_temperature();
      request.mutable_sampling()->clear_top_p();
      request.mutable_sampling()->clear_top_k();
      request.mutable_sampling()->set_use_beam_search(true);
    }
  }
  prompt_tokens *= copies;
  planned_output_tokens *= copies;
  // Copies go out interleaved: request r's copies are sent one after another.
  std::vector<pagedllm::v1::GenerateRequest> sent_requests;
  for (int r = 0; r < num_distinct; ++r) {
    for (int c = 0; c < copies; ++c) {
      sent_requests.push_back(requests[r]);
      sent_requests.back().mutable_sampling()->set_seed(absl::GetFlag(FLAGS_seed) + r * copies + c);
    }
  }
  requests = std::move(sent_requests);

  std::vector<RequestTiming> timings(num_sent);
  std::atomic<int> next{0};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < std::min(absl::GetFlag(FLAGS_concurrency), num_sent); ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < num_sent; i = next++) {
        const auto sent = Clock::now();
        grpc::ClientContext context;
        auto reader = stub->Generate(&context, requests[i]);
        pagedllm::v1::GenerateResponse response;
        RequestTiming& timing = timings[i];
        while (reader->Read(&response)) {
          for (const auto& choice : response.choices()) {
            if (timing.tokens == 0 && choice.token_ids_size() > 0) {
              timing.first_token_s = std::chrono::duration<double>(Clock::now() - sent).count();
            }
            timing.tokens += choice.token_ids_size();
          }
        }
        timing.ok = reader->Finish().ok();
        timing.total_s = std::chrono::duration<double>(Clock::now() - sent).count();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  const double wall_s = std::chrono::duration<double>(Clock::now() - start).count();

  pagedllm::v1::ServerStats after;
  {
    grpc::ClientContext context;
    stub->GetStats(&context, {}, &after);
  }
  int failed = 0;
  long output_tokens = 0;
  std::vector<double> ttft, latency;
  for (const RequestTiming& timing : timings) {
    failed += !timing.ok;
    output_tokens += timing.tokens;
    ttft.push_back(timing.first_token_s);
    latency.push_back(timing.total_s);
  }
  const uint64_t steps = after.num_steps() - before.num_steps();
  std::printf("device %s\n", after.device().c_str());
  std::printf(
      "model %s, tp %d, %d requests (%d failed), workload %s: %.1f prompt and %.1f output tokens "
      "per request, concurrency %d\n",
      after.model().c_str(), after.tp_size(), num_sent, failed, workload.c_str(),
      static_cast<double>(prompt_tokens) / num_sent,
      static_cast<double>(planned_output_tokens) / num_sent, absl::GetFlag(FLAGS_concurrency));
  std::printf("wall %.3f s: %.2f requests/s, %.1f output tokens/s, %.1f total tokens/s\n", wall_s,
              num_sent / wall_s, output_tokens / wall_s, (output_tokens + prompt_tokens) / wall_s);
  std::printf("per worker (GPU): %.1f output tokens/s\n",
              output_tokens / wall_s / std::max(1, after.tp_size()));
  std::printf("engine: %lu steps, %.2f ms per step, %lu preemptions\n",
              static_cast<unsigned long>(steps), steps ? 1e3 * wall_s / steps : 0.0,
              static_cast<unsigned long>(after.num_preemptions() - before.num_preemptions()));
  const uint64_t decode_steps = after.num_decode_steps() - before.num_decode_steps();
  if (decode_steps > 0) {
    const double step_ms =
        1e-6 * (after.decode_step_ns_total() - before.decode_step_ns_total()) / decode_steps;
    const double forward_ms =
        1e-6 * (after.decode_forward_ns_total() - before.decode_forward_ns_total()) / decode_steps;
    // Floor of a decode step: every weight byte and every cached K/V byte read once per step, at
    // the full batch (concurrency sequences) and the mean context (prompt + output / 2).
    const double batch = std::min(absl::GetFlag(FLAGS_concurrency), num_sent);
    const double context =
        (static_cast<double>(prompt_tokens) + planned_output_tokens / 2.0) / num_sent;
    const double bytes =
        after.weight_bytes_per_worker() + batch * context * after.kv_bytes_per_token_per_worker();
    const double floor_ms = 1e3 * bytes / (absl::GetFlag(FLAGS_memory_gbps) * 1e9);
    if (workload == "fixed") {
      std::printf(
          "decode: %lu steps, %.3f ms per step (worker forward %.3f ms); floor %.3f ms "
          "(%.2f GB weights + KV of %.0f seqs x %.0f tokens per worker at %.0f GB/s): %.2fx\n",
          static_cast<unsigned long>(decode_steps), step_ms, forward_ms, floor_ms,
          after.weight_bytes_per_worker() / 1e9, batch, context, absl::GetFlag(FLAGS_memory_gbps),
          floor_ms > 0 ? step_ms / floor_ms : 0.0);
    } else {
      // Lengths vary, so the batch shrinks as sequences finish: no single-step floor applies.
      std::printf("decode: %lu steps, %.3f ms per step (worker forward %.3f ms)\n",
                  static_cast<unsigned long>(decode_steps), step_ms, forward_ms);
    }
  }
  const uint64_t kv_samples = after.kv_usage_samples() - before.kv_usage_samples();
  if (kv_samples > 0) {
    const double allocated = after.kv_slots_allocated_sum() - before.kv_slots_allocated_sum();
    const double filled = after.kv_slots_filled_sum() - before.kv_slots_filled_sum();
    std::printf(
        "KV cache: %.2f%% of allocated slots hold no token (mean over %lu steps); "
        "%.1f blocks in use per step on average\n",
        allocated > 0 ? 100.0 * (1.0 - filled / allocated) : 0.0,
        static_cast<unsigned long>(kv_samples),
        allocated / after.block_size() / static_cast<double>(kv_samples));
  }
  const uint64_t queries = after.num_prefix_cache_queries() - before.num_prefix_cache_queries();
  if (queries > 0) {
    const uint64_t hits =
        after.num_prefix_cache_hit_tokens() - before.num_prefix_cache_hit_tokens();
    std::printf("prefix cache: %lu of %lu prompt tokens found cached (%.1f%%)\n",
                static_cast<unsigned long>(hits), static_cast<unsigned long>(queries),
                100.0 * hits / queries);
  }
  std::printf("swaps: %lu sequences out, %lu in\n",
              static_cast<unsigned long>(after.num_swapped_out() - before.num_swapped_out()),
              static_cast<unsigned long>(after.num_swapped_in() - before.num_swapped_in()));
  std::printf("time to first token: p50 %.3f s, p99 %.3f s; latency: p50 %.3f s, p99 %.3f s\n",
              Percentile(ttft, 0.5), Percentile(ttft, 0.99), Percentile(latency, 0.5),
              Percentile(latency, 0.99));
  return failed == 0 ? 0 : 1;
}
