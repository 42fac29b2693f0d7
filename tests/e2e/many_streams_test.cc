// Thousands of Generate streams open at once through one client completion queue: every one gets
// its tokens, and the coordinator serves them with a bounded number of threads (the callback API
// and a small work pool, not a thread per call).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "tests/e2e/cluster.h"
#include "tests/e2e/e2e_util.h"

namespace pagedllm::testing {
namespace {

namespace v1 = pagedllm::v1;

std::string ModelDir() { return SourceDir() + "/models/pagedllm-tiny-py"; }

int ThreadsOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    int threads = 0;
    if (absl::StartsWith(line, "Threads:") &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(8)), &threads)) {
      return threads;
    }
  }
  return -1;
}

struct Call {
  enum class Next { kRead, kFinish, kDone };
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientAsyncReader<v1::GenerateResponse>> reader;
  v1::GenerateResponse response;
  grpc::Status status;
  Next next = Next::kRead;
  int tokens = 0;
};

TEST(ManyStreamsTest, FiveThousandConcurrentStreamsWithBoundedThreads) {
  constexpr int kStreams = 5000;  // issue 11: 5,000 concurrent streams
  constexpr int kMaxTokens = 24;
  ClusterOptions options(ModelDir(), 1);
  options.num_kv_blocks = 4096;
  options.extra_flags = {"--max_waiting=6000", "--max_num_seqs=64"};
  auto cluster = Cluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const int threads_before = ThreadsOf((*cluster)->coordinator_pid());

  grpc::CompletionQueue queue;
  std::vector<std::unique_ptr<Call>> calls;
  for (int i = 0; i < kStreams; ++i) {
    auto call = std::make_unique<Call>();
    call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
    v1::GenerateRequest request = GreedyRequest({0, 5 + i % 200, 9}, kMaxTokens);
    request.mutable_sampling()->set_ignore_eos(true);
    call->reader = (*cluster)->stub().PrepareAsyncGenerate(&call->context, request, &queue);
    call->reader->StartCall(call.get());
    calls.push_back(std::move(call));
  }
  int done = 0, most_threads = 0;
  auto last_look = std::chrono::steady_clock::now();
  void* tag = nullptr;
  bool ok = false;
  while (done < kStreams && queue.Next(&tag, &ok)) {
    Call* call = static_cast<Call*>(tag);
    if (std::chrono::steady_clock::now() - last_look > std::chrono::milliseconds(50)) {
      last_look = std::chrono::steady_clock::now();
      most_threads = std::max(most_threads, ThreadsOf((*cluster)->coordinator_pid()));
    }
    switch (call->next) {
      case Call::Next::kRead:
        if (ok) {
          for (const v1::Choice& choice : call->response.choices()) {
            call->tokens += choice.token_ids_size();
          }
          call->reader->Read(&call->response, call);  // the first Read follows StartCall
        } else {
          call->next = Call::Next::kFinish;
          call->reader->Finish(&call->status, call);
        }
        break;
      case Call::Next::kFinish:
        call->next = Call::Next::kDone;
        ++done;
        break;
      case Call::Next::kDone:
        break;
    }
  }
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) {
  }
  int succeeded = 0;
  for (const auto& call : calls) {
    if (call->status.ok() && call->tokens == kMaxTokens) ++succeeded;
  }
  std::printf("%d streams: the coordinator had %d threads before, %d at most while serving\n",
              kStreams, threads_before, most_threads);
  EXPECT_EQ(succeeded, kStreams) << "first status: " << calls.front()->status.error_message();
  // gRPC's own pollers and callback executor, the engine, the work pool, the supervisor: a few
  // dozen threads, not one per stream.
  EXPECT_LT(most_threads, threads_before + 100)
      << most_threads << " threads at most, " << threads_before << " before";
  const absl::Status stopped = (*cluster)->Stop();
  EXPECT_TRUE(stopped.ok()) << stopped;
}

}  // namespace
}  // namespace pagedllm::testing
