// pagedllm-batch: offline batch inference through a running pagedllm cluster's OpenAI API, as
// vLLM's run_batch and OpenAI's Batch API do it. Reads a batch file (JSON lines of
// /v1/completions and /v1/chat/completions requests), keeps --concurrency requests in flight
// (the cluster batches them continuously), shows a progress line, and writes one output line per
// input line, in input order. A bad line becomes an error line, never a stop; a request the
// server refuses gets its HTTP status and error body; 429 and 503 (queue full, workers
// restarting) are retried.
//   pagedllm-batch --input batch.jsonl --output results.jsonl --server http://127.0.0.1:8000
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tools/batch/batch_file.h"
#include "tools/batch/http_post.h"

ABSL_FLAG(std::string, input, "", "batch file: JSON lines of OpenAI requests (- for stdin)");
ABSL_FLAG(std::string, output, "", "where the output lines go (- for stdout)");
ABSL_FLAG(std::string, server, "http://127.0.0.1:8000",
          "the coordinator's OpenAI HTTP address (its --http_port)");
ABSL_FLAG(std::string, api_key, "", "API key (default: $PAGEDLLM_API_KEY, then $OPENAI_API_KEY)");
ABSL_FLAG(int, concurrency, 256, "requests in flight at once");
ABSL_FLAG(int, max_retries, 20, "retries of a request answered 429 or 503 (backing off)");
ABSL_FLAG(bool, progress, true, "a progress line on stderr");

namespace pagedllm::batch {
namespace {

struct Line {
  int number = 0;
  std::string text;
  std::string output;  // the output line, once done
};

std::string ApiKey() {
  if (!absl::GetFlag(FLAGS_api_key).empty()) return absl::GetFlag(FLAGS_api_key);
  for (const char* name : {"PAGEDLLM_API_KEY", "OPENAI_API_KEY"}) {
    if (const char* value = std::getenv(name); value != nullptr && *value) return value;
  }
  return "";
}

// Sends one line and makes its output line.
std::string Run(HttpPoster& poster, const Line& line) {
  std::string custom_id;
  absl::StatusOr<BatchRequest> request = ParseBatchLine(line.text, line.number, &custom_id);
  if (!request.ok()) {
    return ErrorLine(custom_id, line.number, "invalid_request",
                     std::string(request.status().message()));
  }
  const int max_retries = absl::GetFlag(FLAGS_max_retries);
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<HttpReply> reply = poster.Post(request->url, request->body);
    const bool retry =
        attempt < max_retries && (!reply.ok() || reply->status == 429 || reply->status == 503);
    if (!retry) {
      if (!reply.ok()) {
        return ErrorLine(custom_id, line.number, "server_unavailable",
                         std::string(reply.status().message()));
      }
      return ResponseLine(custom_id, line.number, reply->status, reply->body);
    }
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::min(5000, 100 << std::min(attempt, 6))));
  }
}

int Main() {
  const std::string input_path = absl::GetFlag(FLAGS_input);
  const std::string output_path = absl::GetFlag(FLAGS_output);
  if (input_path.empty() || output_path.empty()) {
    std::cerr << "pagedllm-batch: --input and --output are required\n";
    return 2;
  }
  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  if (concurrency < 1 || concurrency > 4096) {
    std::cerr << "pagedllm-batch: --concurrency must be in [1, 4096], got " << concurrency << "\n";
    return 2;
  }
  absl::StatusOr<std::pair<std::string, std::string>> server =
      ParseServerUrl(absl::GetFlag(FLAGS_server));
  if (!server.ok()) {
    std::cerr << "pagedllm-batch: " << server.status().message() << "\n";
    return 2;
  }
  std::ifstream file;
  if (input_path != "-") {
    file.open(input_path);
    if (!file) {
      std::cerr << "pagedllm-batch: --input " << input_path << ": cannot read\n";
      return 2;
    }
  }
  std::istream& in = input_path == "-" ? std::cin : file;
  std::vector<Line> lines;
  std::string text;
  for (int number = 1; std::getline(in, text); ++number) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank lines
    lines.push_back({number, std::move(text), ""});
  }
  // The output file is opened before any request, so that a bad path wastes no work.
  std::ofstream out_file;
  if (output_path != "-") {
    out_file.open(output_path, std::ios::trunc);
    if (!out_file) {
      std::cerr << "pagedllm-batch: --output " << output_path << ": cannot write\n";
      return 2;
    }
  }
  std::ostream& out = output_path == "-" ? std::cout : out_file;

  const std::string api_key = ApiKey();
  std::atomic<size_t> next{0};
  std::atomic<size_t> done{0};
  std::atomic<size_t> failed{0};  // error lines and non-200 responses
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  const int num_threads = std::min<int>(concurrency, std::max<size_t>(1, lines.size()));
  for (int t = 0; t < num_threads; ++t) {
    threads.emplace_back([&] {
      HttpPoster poster(server->first, server->second, api_key);
      for (size_t i = next++; i < lines.size(); i = next++) {
        lines[i].output = Run(poster, lines[i]);
        if (lines[i].output.find("\"status_code\":200,") == std::string::npos) ++failed;
        ++done;
      }
    });
  }
  // The progress line, until every line is done.
  const bool progress = absl::GetFlag(FLAGS_progress) && isatty(STDERR_FILENO);
  while (done.load() < lines.size()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (!progress) continue;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const size_t finished = done.load();
    const double rate = seconds > 0 ? finished / seconds : 0;
    const int width = 30;
    const int filled = lines.empty() ? width : static_cast<int>(width * finished / lines.size());
    std::cerr << absl::StrFormat("\r[%s%s] %zu/%zu lines, %.1f req/s, %zu failed, ETA %.0f s   ",
                                 std::string(filled, '='), std::string(width - filled, ' '),
                                 finished, lines.size(), rate, failed.load(),
                                 rate > 0 ? (lines.size() - finished) / rate : 0.0);
  }
  for (std::thread& thread : threads) thread.join();
  for (const Line& line : lines) out << line.output << "\n";
  out.flush();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cerr << (progress ? "\n" : "")
            << absl::StrFormat("pagedllm-batch: %zu lines in %.2f s (%.1f req/s), %zu failed\n",
                               lines.size(), seconds, seconds > 0 ? lines.size() / seconds : 0.0,
                               failed.load());
  if (!out) {
    std::cerr << "pagedllm-batch: --output " << output_path << ": write failed\n";
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace pagedllm::batch

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "pagedllm-batch --input batch.jsonl --output results.jsonl [--server http://HOST:PORT]");
  absl::ParseCommandLine(argc, argv);
  return pagedllm::batch::Main();
}
