#include "tools/bench/runner.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>

#include "grpcpp/client_context.h"
#include "grpcpp/completion_queue.h"
#include "grpcpp/support/async_stream.h"

namespace pagedllm::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration duration) { return std::chrono::duration<double>(duration).count(); }

const char* CodeName(grpc::StatusCode code) {
  static constexpr const char* kNames[] = {"OK",
                                           "CANCELLED",
                                           "UNKNOWN",
                                           "INVALID_ARGUMENT",
                                           "DEADLINE_EXCEEDED",
                                           "NOT_FOUND",
                                           "ALREADY_EXISTS",
                                           "PERMISSION_DENIED",
                                           "RESOURCE_EXHAUSTED",
                                           "FAILED_PRECONDITION",
                                           "ABORTED",
                                           "OUT_OF_RANGE",
                                           "UNIMPLEMENTED",
                                           "INTERNAL",
                                           "UNAVAILABLE",
                                           "DATA_LOSS",
                                           "UNAUTHENTICATED"};
  const int index = static_cast<int>(code);
  return index >= 0 && index < 17 ? kNames[index] : "UNKNOWN";
}

// One call in flight. Exactly one operation of it is pending on the queue at a time, so its
// address is the tag and `state` says which operation completed.
struct Call {
  enum class State { kStarting, kReading, kFinishing };
  size_t index = 0;
  State state = State::kStarting;
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientAsyncReader<v1::GenerateResponse>> reader;
  v1::GenerateResponse response;
  grpc::Status status;
  Clock::time_point sent;
  Clock::time_point last_chunk;
};

}  // namespace

RunResult RunRequests(v1::Generation::Stub* stub, const std::vector<v1::GenerateRequest>& requests,
                      const RunOptions& options) {
  const size_t num_requests = requests.size();
  RunResult result;
  result.records.resize(num_requests);
  for (size_t i = 0; i < num_requests; ++i) {
    RequestRecord& record = result.records[i];
    record.prompt_len = requests[i].token_ids().ids_size();
    record.planned_output_len = static_cast<int>(requests[i].sampling().max_tokens());
    record.arrival_s = i < options.arrivals_s.size() ? options.arrivals_s[i] : 0.0;
  }

  grpc::CompletionQueue queue;
  std::vector<std::unique_ptr<Call>> calls(num_requests);
  const Clock::time_point start = Clock::now();
  size_t next = 0, done = 0, failed = 0;
  int in_flight = 0;
  int64_t tokens_so_far = 0;
  double next_progress_s = options.progress_interval_s;

  const auto launch = [&](size_t index) {
    auto call = std::make_unique<Call>();
    call->index = index;
    if (options.timeout_s > 0) {
      call->context.set_deadline(
          std::chrono::system_clock::now() +
          std::chrono::microseconds(static_cast<int64_t>(options.timeout_s * 1e6)));
    }
    call->sent = Clock::now();
    result.records[index].sent_s = Seconds(call->sent - start);
    call->reader = stub->PrepareAsyncGenerate(&call->context, requests[index], &queue);
    call->reader->StartCall(call.get());
    calls[index] = std::move(call);
    ++in_flight;
  };
  const auto finish = [&](Call* call) {
    call->state = Call::State::kFinishing;
    call->reader->Finish(&call->status, call);
  };
  const auto handle = [&](Call* call, bool ok) {
    const Clock::time_point now = Clock::now();
    RequestRecord& record = result.records[call->index];
    switch (call->state) {
      case Call::State::kStarting:
        if (!ok) return finish(call);
        call->state = Call::State::kReading;
        call->reader->Read(&call->response, call);
        return;
      case Call::State::kReading: {
        if (!ok) return finish(call);  // the stream ended
        int positions = 0;
        for (const v1::Choice& choice : call->response.choices()) {
          positions = std::max(positions, choice.token_ids_size());
          record.output_tokens += choice.token_ids_size();
          tokens_so_far += choice.token_ids_size();
        }
        if (positions > 0) {
          if (record.first_token_s < 0) {
            record.first_token_s = Seconds(now - call->sent);  // TTFT covers the first chunk
          } else {
            const double gap = Seconds(now - call->last_chunk) / positions;
            record.itl_s.insert(record.itl_s.end(), positions, gap);
          }
          call->last_chunk = now;
          record.steps += positions;
        }
        call->response.Clear();
        call->reader->Read(&call->response, call);
        return;
      }
      case Call::State::kFinishing:
        record.latency_s = Seconds(now - call->sent);
        record.ok = call->status.ok();
        if (!record.ok) {
          record.error = std::string(CodeName(call->status.error_code())) + ": " +
                         call->status.error_message();
          ++failed;
        }
        calls[call->index].reset();
        --in_flight;
        ++done;
        return;
    }
  };

  while (done < num_requests) {
    const auto can_launch = [&] {
      return next < num_requests &&
             (options.max_in_flight <= 0 || in_flight < options.max_in_flight);
    };
    while (can_launch() && result.records[next].arrival_s <= Seconds(Clock::now() - start)) {
      launch(next++);
    }
    double wake_s = options.progress ? next_progress_s : 1e9;
    if (can_launch()) wake_s = std::min(wake_s, result.records[next].arrival_s);
    const double wait_s = std::max(0.0, wake_s - Seconds(Clock::now() - start));
    const gpr_timespec deadline = gpr_time_add(
        gpr_now(GPR_CLOCK_MONOTONIC),
        gpr_time_from_micros(static_cast<int64_t>(std::min(wait_s, 3600.0) * 1e6), GPR_TIMESPAN));
    void* tag = nullptr;
    bool ok = false;
    if (queue.AsyncNext(&tag, &ok, deadline) == grpc::CompletionQueue::GOT_EVENT) {
      handle(static_cast<Call*>(tag), ok);
    }
    const double elapsed_s = Seconds(Clock::now() - start);
    if (options.progress && elapsed_s >= next_progress_s) {
      std::fprintf(stderr,
                   "%s%s%zu/%zu requests done (%zu failed), %d in flight, %.1f output "
                   "tokens/s so far\n",
                   options.progress_label.c_str(), options.progress_label.empty() ? "" : ": ", done,
                   num_requests, failed, in_flight, tokens_so_far / elapsed_s);
      while (next_progress_s <= elapsed_s) next_progress_s += options.progress_interval_s;
    }
  }
  result.wall_s = Seconds(Clock::now() - start);
  queue.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (queue.Next(&tag, &ok)) {
  }
  return result;
}

}  // namespace pagedllm::bench
