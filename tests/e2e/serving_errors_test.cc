// Bad input, overload, cancellation, lost workers and bad model files, through the real cluster.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/build_info.h"
#include "common/read_file.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "pagedllm/worker/v1/worker.grpc.pb.h"
#include "proto/worker_protocol.h"
#include "tests/e2e/cluster.h"
#include "tests/e2e/e2e_util.h"

namespace pagedllm::testing {
namespace {

using ::testing::HasSubstr;
namespace v1 = pagedllm::v1;

std::string ModelDir() { return SourceDir() + "/models/pagedllm-tiny-py"; }

constexpr char kWorkerSecret[] = "test-secret-0123456789abcdef";

// The rank of a worker process, from the environment mpirun gave it.
int RankOf(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/environ"), std::ios::binary);
  std::string entry;
  while (std::getline(in, entry, '\0')) {
    if (absl::StartsWith(entry, "OMPI_COMM_WORLD_RANK=")) return std::stoi(entry.substr(21));
  }
  return -1;
}

class ServingErrorsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // A known worker secret, so that the hello tests can get past it (the coordinator makes a
    // random one otherwise).
    setenv("PAGEDLLM_WORKER_SECRET", kWorkerSecret, 1);
    ClusterOptions options(ModelDir(), 2);
    options.num_kv_blocks = 64;
    options.extra_flags = {"--max_num_seqs=2", "--max_waiting=2"};
    auto started = Cluster::Start(options);
    ASSERT_TRUE(started.ok()) << started.status();
    cluster_ = started->release();
  }
  static void TearDownTestSuite() {
    if (cluster_ != nullptr) {
      EXPECT_TRUE(cluster_->Stop().ok()) << cluster_->ReadLog();
      delete cluster_;
      cluster_ = nullptr;
    }
  }
  void TearDown() override {
    if (cluster_ == nullptr) return;
    auto stats = cluster_->WaitForAllBlocksFree();
    EXPECT_TRUE(stats.ok()) << stats.status();
  }

  static void ExpectInvalid(const v1::GenerateRequest& request, const std::string& message_part) {
    const GenerateOutcome outcome = Generate(cluster_->stub(), request);
    EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << outcome.status.error_message();
    EXPECT_THAT(outcome.status.error_message(), HasSubstr(message_part));
    EXPECT_TRUE(outcome.token_ids.empty());
  }

  static Cluster* cluster_;
};

Cluster* ServingErrorsTest::cluster_ = nullptr;

TEST_F(ServingErrorsTest, EveryBadFieldIsNamed) {
  v1::GenerateRequest no_prompt;
  ExpectInvalid(no_prompt, "prompt");

  ExpectInvalid(GreedyRequest({}, 4), "prompt.token_ids is empty");
  ExpectInvalid(GreedyRequest({0, 5000}, 4), "prompt.token_ids[1] = 5000");
  ExpectInvalid(GreedyRequest({0, -1}, 4), "prompt.token_ids[1] = -1");
  ExpectInvalid(GreedyRequest(std::vector<int32_t>(1024, 5), 4),
                "prompt has 1024 tokens, max_model_len is 1024");

  v1::GenerateRequest request = GreedyRequest({0, 5}, 4);
  request.mutable_sampling()->set_max_tokens(0);
  ExpectInvalid(request, "sampling.max_tokens must be >= 1, got 0");

  request = GreedyRequest({0, 5, 6, 7, 8}, 4);
  request.mutable_sampling()->set_max_tokens(1000000000);
  ExpectInvalid(request,
                "sampling.max_tokens is 1000000000 and the prompt has 5 tokens: 1000000005 "
                "tokens exceed max_model_len 1024");

  request = GreedyRequest({0, 5}, 4);
  request.mutable_sampling()->set_top_p(1.5f);
  ExpectInvalid(request, "sampling.top_p must be in (0, 1], got 1.5");

  request = GreedyRequest({0, 5}, 4);
  request.mutable_sampling()->set_temperature(-1.0f);
  ExpectInvalid(request, "sampling.temperature must be in [0, 100], got -1");

  request = GreedyRequest({0, 5}, 4);
  request.mutable_sampling()->set_min_p(2.0f);
  ExpectInvalid(request, "sampling.min_p must be in [0, 1], got 2");

  request = GreedyRequest({0, 5}, 4);
  request.mutable_sampling()->set_top_k(-5);
  ExpectInvalid(request, "sampling.top_k");

  request = GreedyRequest({0, 5}, 4);
  request.mutable_sampling()->set_logprobs(21);
  ExpectInvalid(request, "sampling.logprobs must be in [0, 20], got 21");

  request = GreedyRequest({0, 5}, 4);
  request.mutable_sampling()->add_stop_token_ids(4096);
  ExpectInvalid(request, "sampling.stop_token_ids[0] = 4096");

  request = GreedyRequest({0, 5}, 4);
  request.mutable_sampling()->set_n(17);
  ExpectInvalid(request, "sampling.n must be in [1, 16], got 17");

  request = GreedyRequest({0, 5}, 4);
  request.mutable_sampling()->set_n(0);
  ExpectInvalid(request, "sampling.n must be in [1, 16], got 0");

  request = GreedyRequest({0, 5}, 4);
  request.mutable_sampling()->set_n(3);
  request.mutable_sampling()->set_best_of(2);
  ExpectInvalid(request, "sampling.best_of must be in [n = 3, 16], got 2");

  request = GreedyRequest({0, 5}, 4);
  request.mutable_sampling()->set_use_beam_search(true);
  request.mutable_sampling()->set_temperature(0.7f);
  ExpectInvalid(request, "sampling.temperature must be 0 (or unset) with use_beam_search");

  request = GreedyRequest({0, 5}, 4);
  request.mutable_sampling()->set_use_beam_search(true);
  request.mutable_sampling()->set_top_p(0.5f);
  ExpectInvalid(request, "top_p, top_k and min_p must be unset");

  request = GreedyRequest({0, 5}, 4);
  request.mutable_sampling()->set_use_beam_search(true);
  request.mutable_sampling()->set_length_penalty(std::nanf(""));
  ExpectInvalid(request, "sampling.length_penalty must be finite");

  request = GreedyRequest({0, 5}, 4);
  request.set_request_id(std::string(300, 'x'));
  ExpectInvalid(request, "request_id has 300 bytes");
}

TEST_F(ServingErrorsTest, ServerStillServesAfterBadInput) {
  const GenerateOutcome outcome = Generate(cluster_->stub(), GreedyRequest({0, 476, 290}, 5));
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  EXPECT_EQ(outcome.token_ids.size(), 5u);
  EXPECT_EQ(outcome.finish_reason, v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(HealthStatus(cluster_->address()), "SERVING");
}

TEST_F(ServingErrorsTest, StopTokenEndsTheSequence) {
  // The golden continuation of "def fibonacci(n):" starts 268, 393, 37: stop at 393.
  v1::GenerateRequest request = GreedyRequest({0, 476, 290, 1489, 272, 1156, 529, 10, 80, 311}, 20);
  request.mutable_sampling()->add_stop_token_ids(393);
  const GenerateOutcome outcome = Generate(cluster_->stub(), request);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  EXPECT_EQ(outcome.token_ids, (std::vector<int32_t>{268, 393}));
  EXPECT_EQ(outcome.finish_reason, v1::FINISH_REASON_STOP);
}

TEST_F(ServingErrorsTest, FullQueueIsResourceExhausted) {
  // 2 running + 2 waiting fit; the rest of a burst of 8 long requests must be refused.
  std::vector<v1::GenerateRequest> burst(8, GreedyRequest({0, 476, 290}, 200));
  const std::vector<GenerateOutcome> outcomes = GenerateConcurrently(cluster_->stub(), burst);
  int ok = 0, exhausted = 0;
  for (const GenerateOutcome& outcome : outcomes) {
    if (outcome.status.ok()) {
      ++ok;
      EXPECT_EQ(outcome.token_ids.size(), 200u);
    } else {
      EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
          << outcome.status.error_message();
      ++exhausted;
    }
  }
  EXPECT_GE(ok, 2);
  EXPECT_GE(exhausted, 1);
}

TEST_F(ServingErrorsTest, CancellingACallFreesItsBlocks) {
  auto before = cluster_->WaitForAllBlocksFree(5000);
  ASSERT_TRUE(before.ok()) << before.status();
  grpc::ClientContext context;
  auto reader = cluster_->stub().Generate(&context, GreedyRequest({0, 476, 290}, 900));
  v1::GenerateResponse response;
  ASSERT_TRUE(reader->Read(&response));  // it is running
  context.TryCancel();
  while (reader->Read(&response)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  auto after = cluster_->WaitForAllBlocksFree(5000);
  ASSERT_TRUE(after.ok()) << after.status();
  // The engine aborted the sequence: it stopped far short of its 900 tokens.
  EXPECT_LT(after->num_generated_tokens() - before->num_generated_tokens(), 450u);
}

pid_t WorkerOfRank(const Cluster& cluster, int rank) {
  for (pid_t pid : cluster.WorkerPids()) {
    if (RankOf(pid) == rank) return pid;
  }
  return -1;
}

int NumWaiting(v1::Generation::Stub& stub) {
  grpc::ClientContext context;
  v1::ServerStats stats;
  return stub.GetStats(&context, v1::GetStatsRequest(), &stats).ok() ? stats.num_waiting() : -1;
}

// Polls health until SERVING after having seen NOT_SERVING (up to timeout_s); whether it was
// seen, and the last status.
std::pair<bool, std::string> WaitForRecovery(const std::string& address, int timeout_s) {
  bool saw_not_serving = false;
  std::string health;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    health = HealthStatus(address);
    saw_not_serving = saw_not_serving || health == "NOT_SERVING";
    if (saw_not_serving && health == "SERVING") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return {saw_not_serving, health};
}

// A worker that dies (SIGKILL) or stops (SIGSTOP) mid-stream, each rank in turn: the stream
// fails with UNAVAILABLE naming that rank (a death within 2 s, a stop within the 3 s heartbeat
// deadline), health turns NOT_SERVING, the supervisor tears the whole job down and launches a
// new one: health is SERVING again, the request that was waiting behind the stream (one
// sequence at a time) is kept and runs on the new workers, and the tokens are those of before.
TEST(ServingFailuresTest, LostOrHungWorkerFailsItsStreamsThenTheWorkersRestart) {
  for (int signal_number : {SIGKILL, SIGSTOP}) {
    for (int lost_rank : {1, 0}) {
      SCOPED_TRACE(absl::StrCat("rank ", lost_rank, " gets signal ", signal_number));
      ClusterOptions options(ModelDir(), 2);
      options.extra_flags = {"--max_num_seqs=1"};
      auto cluster = Cluster::Start(options);
      ASSERT_TRUE(cluster.ok()) << cluster.status();
      v1::Generation::Stub& stub = (*cluster)->stub();
      const v1::GenerateRequest short_request = GreedyRequest({0, 5, 9, 11}, 12);
      const GenerateOutcome before = Generate(stub, short_request);
      ASSERT_TRUE(before.status.ok()) << before.status.error_message();

      grpc::ClientContext context;
      v1::GenerateRequest long_request = GreedyRequest({0, 476, 290}, 900);
      long_request.mutable_sampling()->set_ignore_eos(true);
      auto reader = stub.Generate(&context, long_request);
      v1::GenerateResponse response;
      ASSERT_TRUE(reader->Read(&response));
      GenerateOutcome waited;
      std::thread waiting_call([&] { waited = Generate(stub, short_request); });
      for (int i = 0; i < 200 && NumWaiting(stub) < 1; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      ASSERT_EQ(NumWaiting(stub), 1) << "the second request should wait behind the first";

      const pid_t victim = WorkerOfRank(**cluster, lost_rank);
      ASSERT_GT(victim, 0) << "no worker of rank " << lost_rank;
      const auto signalled_at = std::chrono::steady_clock::now();
      kill(victim, signal_number);
      while (reader->Read(&response)) {
      }
      const grpc::Status status = reader->Finish();
      const double waited_s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - signalled_at).count();
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
      EXPECT_THAT(status.error_message(), HasSubstr(absl::StrCat("worker rank ", lost_rank, " (")));
      EXPECT_LT(waited_s, signal_number == SIGKILL ? 2.0 : 5.0);
      if (signal_number == SIGSTOP) {
        EXPECT_THAT(status.error_message(), HasSubstr("hung or stopped"));
      }

      const auto [saw_not_serving, health] = WaitForRecovery((*cluster)->address(), 60);
      EXPECT_TRUE(saw_not_serving);
      EXPECT_EQ(health, "SERVING");
      waiting_call.join();
      EXPECT_TRUE(waited.status.ok()) << waited.status.error_message();
      EXPECT_EQ(waited.token_ids, before.token_ids);
      const GenerateOutcome after = Generate(stub, short_request);
      EXPECT_TRUE(after.status.ok()) << after.status.error_message();
      EXPECT_EQ(after.token_ids, before.token_ids);
      EXPECT_THAT((*cluster)->ReadLog(), HasSubstr("restart 1 of at most"));
      const std::vector<pid_t> workers = (*cluster)->WorkerPids();
      EXPECT_EQ(std::count(workers.begin(), workers.end(), victim), 0)
          << "the lost worker " << victim << " was left behind";
      const absl::Status stopped = (*cluster)->Stop();
      EXPECT_TRUE(stopped.ok()) << stopped << "\n" << (*cluster)->ReadLog();
    }
  }
}

// A rank stuck inside a step while its heartbeats go on (a kernel or a collective that never
// returns; injected with PAGEDLLM_FAULT_HANG_AT_STEP) is caught by the step deadline, which
// follows the slowest step seen (here its 10 s floor), not by --step_timeout_s (120 s): the
// stream fails UNAVAILABLE saying so, and with --max_restarts 0 the coordinator exits with 3.
TEST(ServingFailuresTest, AStepStuckWithHeartbeatsFailsWithinTheDerivedDeadline) {
  setenv("PAGEDLLM_FAULT_HANG_AT_STEP", "30", 1);
  setenv("PAGEDLLM_FAULT_HANG_RANK", "1", 1);
  ClusterOptions options(ModelDir(), 2);
  options.extra_flags = {"--max_restarts=0", "--step_timeout_s=120"};
  auto cluster = Cluster::Start(options);
  unsetenv("PAGEDLLM_FAULT_HANG_AT_STEP");
  unsetenv("PAGEDLLM_FAULT_HANG_RANK");
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  v1::GenerateRequest request = GreedyRequest({0, 476, 290}, 900);
  request.mutable_sampling()->set_ignore_eos(true);
  const auto started = std::chrono::steady_clock::now();
  const GenerateOutcome outcome = Generate((*cluster)->stub(), request);
  const double waited_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(outcome.status.error_message(), HasSubstr("step 30 got no result"));
  EXPECT_THAT(outcome.status.error_message(), HasSubstr("still sends heartbeats"));
  EXPECT_LT(outcome.token_ids.size(), 30u);
  EXPECT_LT(waited_s, 20.0);  // the 10 s floor and the steps before, not 120 s
  const absl::StatusOr<int> exit_status = (*cluster)->WaitForExit(30000);
  ASSERT_TRUE(exit_status.ok()) << exit_status.status();
  EXPECT_EQ(*exit_status, 3);
}

// mpirun -np 2 pagedllm-worker for a coordinator started with --launch_workers=false (Spawn: a
// process group of its own, its output appended to `log_path`).
pid_t StartExternalWorkers(int worker_port, const std::string& log_path) {
  std::vector<std::string> argv = {"mpirun",
                                   "-np",
                                   "2",
                                   "--oversubscribe",
                                   "--bind-to",
                                   "none",
                                   "-x",
                                   "PAGEDLLM_WORKER_SECRET",
                                   "-x",
                                   "PAGEDLLM_CPU_THREADS",
                                   BinDir() + "/pagedllm-worker",
                                   "--coordinator",
                                   absl::StrCat("127.0.0.1:", worker_port),
                                   "--model",
                                   ModelDir(),
                                   "--device",
                                   "cpu",
                                   "--cpu_kv_cache_gib",
                                   "0.25"};
  return Spawn(argv, log_path);
}

// Waits up to timeout_s for `pid` to exit; false if it did not.
bool Reaped(pid_t pid, int timeout_s) {
  for (int i = 0; i < timeout_s * 20; ++i) {
    if (waitpid(pid, nullptr, WNOHANG) == pid) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// Workers started elsewhere (--launch_workers=false): when one dies, its stream fails naming
// the rank, the coordinator tells the survivor to exit (the outside job ends by itself), health
// turns NOT_SERVING, and a new set of workers that connects is taken: SERVING again, the same
// tokens.
TEST(ServingFailuresTest, WorkersStartedElsewhereAreReplacedByTheNextSetThatConnects) {
  setenv("PAGEDLLM_WORKER_SECRET", kWorkerSecret, 1);
  setenv("PAGEDLLM_CPU_THREADS", "1", 1);
  const std::string workers_log = ::testing::TempDir() + "/pagedllm-external-workers.log";
  pid_t workers = -1;
  ClusterOptions options(ModelDir(), 2);
  options.launch_workers = false;
  options.start_workers = [&](int worker_port) {
    workers = StartExternalWorkers(worker_port, workers_log);
  };
  auto cluster = Cluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ASSERT_GT(workers, 0);
  const v1::GenerateRequest short_request = GreedyRequest({0, 5, 9, 11}, 12);
  const GenerateOutcome before = Generate((*cluster)->stub(), short_request);
  ASSERT_TRUE(before.status.ok()) << before.status.error_message();

  grpc::ClientContext context;
  v1::GenerateRequest long_request = GreedyRequest({0, 476, 290}, 900);
  long_request.mutable_sampling()->set_ignore_eos(true);
  auto reader = (*cluster)->stub().Generate(&context, long_request);
  v1::GenerateResponse response;
  ASSERT_TRUE(reader->Read(&response));
  const pid_t victim = WorkerOfRank(**cluster, 1);
  ASSERT_GT(victim, 0);
  kill(victim, SIGKILL);
  while (reader->Read(&response)) {
  }
  const grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("worker rank 1 ("));
  EXPECT_TRUE(Reaped(workers, 30)) << "the outside job did not end";
  EXPECT_EQ(HealthStatus((*cluster)->address()), "NOT_SERVING");

  workers = StartExternalWorkers((*cluster)->worker_port(), workers_log);
  const auto [saw_not_serving, health] = WaitForRecovery((*cluster)->address(), 60);
  EXPECT_EQ(health, "SERVING") << (*cluster)->ReadLog();
  const GenerateOutcome after = Generate((*cluster)->stub(), short_request);
  EXPECT_TRUE(after.status.ok()) << after.status.error_message();
  EXPECT_EQ(after.token_ids, before.token_ids);
  const absl::Status stopped = (*cluster)->Stop();
  EXPECT_TRUE(stopped.ok()) << stopped << "\n" << (*cluster)->ReadLog();
  EXPECT_TRUE(Reaped(workers, 30));
  unsetenv("PAGEDLLM_CPU_THREADS");
}

// Each loss up to --max_restarts is followed by a restart; the next one stops the coordinator
// with status 3 (for systemd or Kubernetes to act on), failing every call with UNAVAILABLE that
// names the cause, and leaving no process behind. --max_restarts 0 exits at the first loss.
TEST(ServingFailuresTest, LossesPastMaxRestartsStopTheCoordinatorWithStatus3) {
  for (int max_restarts : {0, 2}) {
    SCOPED_TRACE(absl::StrCat("--max_restarts=", max_restarts));
    ClusterOptions options(ModelDir(), 2);
    options.extra_flags = {absl::StrCat("--max_restarts=", max_restarts)};
    auto cluster = Cluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    for (int loss = 0; loss <= max_restarts; ++loss) {
      SCOPED_TRACE(absl::StrCat("loss ", loss));
      for (int i = 0; i < 300 && HealthStatus((*cluster)->address()) != "SERVING"; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      grpc::ClientContext context;
      v1::GenerateRequest request = GreedyRequest({0, 476, 290}, 900);
      request.mutable_sampling()->set_ignore_eos(true);
      auto reader = (*cluster)->stub().Generate(&context, request);
      v1::GenerateResponse response;
      ASSERT_TRUE(reader->Read(&response));
      const pid_t victim = WorkerOfRank(**cluster, loss % 2);
      ASSERT_GT(victim, 0);
      kill(victim, SIGKILL);
      while (reader->Read(&response)) {
      }
      const grpc::Status status = reader->Finish();
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
      EXPECT_THAT(status.error_message(), HasSubstr(absl::StrCat("worker rank ", loss % 2)));
    }
    const absl::StatusOr<int> exit_status = (*cluster)->WaitForExit(30000);
    ASSERT_TRUE(exit_status.ok()) << exit_status.status() << "\n" << (*cluster)->ReadLog();
    EXPECT_EQ(*exit_status, 3) << (*cluster)->ReadLog();
    EXPECT_THAT((*cluster)->ReadLog(),
                HasSubstr(absl::StrCat("--max_restarts (", max_restarts, ") restarts are spent")));
  }
}

// The coordinator's own final error names what the workers found wrong (their output passes
// through it), and the process exits non-zero; the whole log is not searched (the mpirun command
// line echoes the path too).
TEST(ServingFailuresTest, MissingModelStopsStartUpNamingThePath) {
  auto result = RunCommand({BinDir() + "/pagedllm-coordinator", "--model", "/nonexistent/model-dir",
                            "--tp", "2", "--port", "0"},
                           60000);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_NE(result->first, 0);
  std::string final_error;
  for (absl::string_view line : absl::StrSplit(result->second, '\n')) {
    if (absl::StrContains(line, "coordinator") &&
        absl::StrContains(line, "workers did not start")) {
      final_error = std::string(line);
    }
  }
  EXPECT_THAT(final_error, HasSubstr("model dir /nonexistent/model-dir: no config.json"))
      << result->second;
}

// Flag values that cannot work stop start-up at once, before any worker is launched, with exit
// status 2 and a message naming the flag and the value.
TEST(ServingFailuresTest, BadFlagsStopStartUpNamingTheFlag) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--max_waiting=0", "--max_waiting must be >= 1, got 0"},
      {"--max_num_seqs=-1", "--max_num_seqs must be in [0, 65536], got -1"},
      {"--max_num_seqs=100000", "--max_num_seqs must be in [0, 65536], got 100000"},
      {"--max_num_batched_tokens=-1", "--max_num_batched_tokens must be in [0, 1048576], got -1"},
      {"--max_num_batched_tokens=2000000000",
       "--max_num_batched_tokens must be in [0, 1048576], got 2000000000"},
      {"--max_restarts=-1", "--max_restarts must be >= 0, got -1"},
      {"--step_timeout_s=0", "--step_timeout_s must be >= 1, got 0"},
      {"--step_timeout_s=-5", "--step_timeout_s must be >= 1, got -5"},
      {"--tp=0", "--tp must be >= 1, got 0"},
      {"--block_size=0", "--block_size must be in [1, 1024], got 0"},
      {"--port=70000", "--port must be in [0, 65535], got 70000"},
      {"--device=tpu", "--device must be one of cpu, cuda; got \"tpu\""},
      {"--gpu_memory_utilization=0", "--gpu_memory_utilization must be in (0, 1], got 0"},
      {"--preemption_mode=never", "--preemption_mode must be one of auto, swap, recompute"},
      {"--swap_space_gib=-1", "--swap_space_gib must be in [0, 1024], got -1"},
      {"--decode_graphs=maybe", "--decode_graphs must be one of auto, on, off"},
  };
  for (const auto& [flag, message] : cases) {
    auto result = RunCommand(
        {BinDir() + "/pagedllm-coordinator", "--model", ModelDir(), "--port", "0", flag}, 10000);
    ASSERT_TRUE(result.ok()) << flag << ": " << result.status();
    EXPECT_EQ(result->first, 2) << flag << ": " << result->second;
    EXPECT_THAT(result->second, HasSubstr(message)) << flag;
    EXPECT_THAT(result->second, ::testing::Not(HasSubstr("waiting for")))
        << flag << ": workers were launched";
  }
}

// A request belongs to the call that made it: another call using the same request_id (here with
// a deadline that ends it at once) neither fails nor aborts it. Ids the server assigns are
// unguessable: 128 random bits.
TEST_F(ServingErrorsTest, ARequestIdNeverReachesAnotherCallsRequest) {
  v1::GenerateRequest victim = GreedyRequest({0, 476, 290}, 120);
  victim.set_request_id("shared-id");
  GenerateOutcome victim_outcome;
  std::thread victim_thread([&] { victim_outcome = Generate(cluster_->stub(), victim); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  for (int i = 0; i < 10; ++i) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(1));
    auto reader = cluster_->stub().Generate(&context, victim);
    v1::GenerateResponse response;
    while (reader->Read(&response)) {
    }
    reader->Finish();
  }
  v1::GenerateRequest same_id = GreedyRequest({0, 476, 290}, 5);
  same_id.set_request_id("shared-id");
  // The suite's queue holds 2: wait for the aborted calls to leave it.
  GenerateOutcome concurrent;
  for (int attempt = 0; attempt < 50; ++attempt) {
    concurrent = Generate(cluster_->stub(), same_id);
    if (concurrent.status.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(concurrent.status.ok()) << concurrent.status.error_message();
  EXPECT_EQ(concurrent.token_ids.size(), 5u);
  victim_thread.join();
  ASSERT_TRUE(victim_outcome.status.ok()) << victim_outcome.status.error_message();
  EXPECT_EQ(victim_outcome.token_ids.size(), 120u);
  EXPECT_EQ(victim_outcome.finish_reason, v1::FINISH_REASON_LENGTH);

  std::set<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext context;
    auto reader = cluster_->stub().Generate(&context, GreedyRequest({0, 476, 290}, 1));
    v1::GenerateResponse response;
    ASSERT_TRUE(reader->Read(&response));
    ids.insert(response.request_id());
    while (reader->Read(&response)) {
    }
    ASSERT_TRUE(reader->Finish().ok());
  }
  EXPECT_EQ(ids.size(), 3u);
  for (const std::string& id : ids) {
    EXPECT_TRUE(std::regex_match(id, std::regex("req-[0-9a-f]{32}"))) << id;
  }
}

// Anyone reaching the worker port may say hello: a bad or duplicate hello is refused, and the
// cluster keeps serving (it used to abort on block_size 0 and to fail for good on a second
// hello for a connected rank).
TEST_F(ServingErrorsTest, BadAndDuplicateWorkerHellosAreRefused) {
  namespace wv1 = pagedllm::worker::v1;
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", cluster_->worker_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = wv1::WorkerControl::NewStub(channel);
  auto hello_from = [&](wv1::WorkerHello hello) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto stream = stub->Connect(&context);
    wv1::WorkerMessage message;
    *message.mutable_hello() = std::move(hello);
    stream->Write(message);
    stream->WritesDone();
    wv1::CoordinatorMessage reply;
    while (stream->Read(&reply)) {
    }
    return stream->Finish();
  };
  wv1::WorkerHello good;
  good.set_rank(0);
  good.set_world_size(2);  // the suite's cluster runs tp 2
  good.set_hostname("intruder");
  good.set_block_size(16);
  good.set_num_kv_blocks(100);
  good.mutable_model()->set_name("pagedllm-tiny-py");
  good.mutable_model()->set_vocab_size(4096);
  good.mutable_model()->set_max_position_embeddings(1024);
  // It passes the handshake: this build, this protocol, the served model's config.json.
  good.set_build_version(BuildVersion());
  good.set_protocol_revision(WorkerProtocolRevision());
  good.set_protocol_fingerprint(WorkerProtocolFingerprint());
  absl::StatusOr<std::string> config = ReadFile(ModelDir() + "/config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  good.set_model_config_hash(Fingerprint64(*config));

  // Without the launch's secret nothing else is even looked at.
  grpc::Status status = hello_from(good);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  good.set_secret("wrong");
  status = hello_from(good);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  good.set_secret(kWorkerSecret);

  wv1::WorkerHello zero_blocks = good;
  zero_blocks.set_block_size(0);
  status = hello_from(zero_blocks);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("block_size must be in [1, 1024], got 0"));

  wv1::WorkerHello no_cache = good;
  no_cache.set_num_kv_blocks(0);
  status = hello_from(no_cache);
  EXPECT_THAT(status.error_message(), HasSubstr("num_kv_blocks must be >= 1, got 0"));

  wv1::WorkerHello bad_rank = good;
  bad_rank.set_rank(7);
  status = hello_from(bad_rank);
  EXPECT_THAT(status.error_message(), HasSubstr("rank must be in [0, 2)"));

  status = hello_from(good);  // rank 0 is connected already
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("worker rank 0 is already connected"));

  EXPECT_EQ(HealthStatus(cluster_->address()), "SERVING");
  const GenerateOutcome outcome = Generate(cluster_->stub(), GreedyRequest({0, 476, 290}, 5));
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  EXPECT_EQ(outcome.token_ids.size(), 5u);
}

// A second coordinator on a port in use refuses to start (gRPC's SO_REUSEPORT used to let it
// share the port and take some of the first one's connections), and stops its workers.
TEST_F(ServingErrorsTest, ASecondCoordinatorOnAPortInUseRefusesToStart) {
  const std::string port = cluster_->address().substr(cluster_->address().rfind(':') + 1);
  auto result = RunCommand({BinDir() + "/pagedllm-coordinator", "--model", ModelDir(), "--tp", "1",
                            "--port", port, "--cpu_kv_cache_gib", "0.05"},
                           60000);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_NE(result->first, 0) << result->second;
  EXPECT_THAT(result->second, HasSubstr(absl::StrCat("cannot listen on 0.0.0.0:", port)));
  EXPECT_EQ(HealthStatus(cluster_->address()), "SERVING");
}

// SIGTERM drains: health turns NOT_SERVING and new calls get UNAVAILABLE at once, a stream in
// flight runs to its end, then every process stops; past --drain_timeout_s the rest is aborted.
TEST(ServingFailuresTest, SigtermDrainsCallsInFlightThenStops) {
  for (bool patient : {true, false}) {
    SCOPED_TRACE(patient ? "drain long enough" : "drain too short");
    ClusterOptions options(ModelDir(), 1);
    options.extra_flags = {patient ? "--drain_timeout_s=20" : "--drain_timeout_s=1"};
    auto cluster = Cluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    // Long enough to outlast a 1 s drain on this CPU model (~5 ms a token).
    v1::GenerateRequest long_request = GreedyRequest({0, 476, 290}, patient ? 200 : 1000);
    long_request.mutable_sampling()->set_ignore_eos(true);
    if (!patient) long_request.mutable_sampling()->set_max_tokens(1000);
    grpc::ClientContext context;
    auto reader = (*cluster)->stub().Generate(&context, long_request);
    v1::GenerateResponse response;
    ASSERT_TRUE(reader->Read(&response));  // it is running
    size_t tokens = response.choices(0).token_ids_size();
    kill((*cluster)->coordinator_pid(), SIGTERM);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(HealthStatus((*cluster)->address()), "NOT_SERVING");
    const GenerateOutcome refused = Generate((*cluster)->stub(), GreedyRequest({0, 476, 290}, 4));
    EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_THAT(refused.status.error_message(), HasSubstr("draining"));
    while (reader->Read(&response)) tokens += response.choices(0).token_ids_size();
    const grpc::Status status = reader->Finish();
    if (patient) {
      EXPECT_TRUE(status.ok()) << status.error_message();
      EXPECT_EQ(tokens, 200u);
    } else {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
      EXPECT_LT(tokens, 1000u);
    }
    const absl::Status stopped = (*cluster)->Stop();  // every process gone, exit status 0
    EXPECT_TRUE(stopped.ok()) << stopped << "\n" << (*cluster)->ReadLog();
  }
}

// --log_format json: every log line of the coordinator and of each worker is one JSON object with
// a date, and each request leaves one line when it ends (tokens, latencies, finish reason).
TEST(ServingFailuresTest, JsonLogsWithDatesAndOneLinePerRequest) {
  ClusterOptions options(ModelDir(), 2);
  options.extra_flags = {"--log_format=json"};
  auto cluster = Cluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  v1::GenerateRequest request = GreedyRequest({0, 476, 290}, 6);
  request.set_request_id("logged-request");
  ASSERT_TRUE(Generate((*cluster)->stub(), request).status.ok());
  ASSERT_TRUE((*cluster)->Stop().ok());
  std::set<std::string> sources;
  int request_lines = 0;
  int json_lines = 0;
  for (absl::string_view line : absl::StrSplit((*cluster)->ReadLog(), '\n')) {
    if (line.empty() || line[0] != '{') continue;
    const nlohmann::json entry = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(entry.is_discarded()) << line;
    ++json_lines;
    for (const char* field : {"time", "level", "source", "file", "message"}) {
      ASSERT_TRUE(entry.contains(field)) << field << " missing in " << line;
    }
    EXPECT_TRUE(std::regex_match(entry["time"].get<std::string>(),
                                 std::regex(R"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}Z)")))
        << line;
    sources.insert(entry["source"].get<std::string>());
    const std::string message = entry["message"].get<std::string>();
    if (absl::StartsWith(message, "request logged-request:")) {
      ++request_lines;
      EXPECT_THAT(message, HasSubstr("3 prompt + 6 output tokens"));
      EXPECT_THAT(message, HasSubstr("finish length"));
    }
  }
  EXPECT_GT(json_lines, 5);
  EXPECT_EQ(request_lines, 1);
  for (const char* source : {"coordinator", "worker[0]", "worker[1]"}) {
    EXPECT_TRUE(sources.count(source)) << source << " wrote no JSON log line";
  }
}

// SIGINT (Ctrl-C) stops the cluster like SIGTERM: exit status 0, no worker left.
TEST(ServingFailuresTest, SigintStopsEveryProcess) {
  auto cluster = Cluster::Start(ClusterOptions(ModelDir(), 2));
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ASSERT_EQ((*cluster)->WorkerPids().size(), 2u);
  // (This process may itself ignore SIGINT, as a shell's background job does; the coordinator
  // must not inherit that.) Stop checks the exit status and that no worker is left.
  const absl::Status stopped = (*cluster)->Stop(SIGINT);
  EXPECT_TRUE(stopped.ok()) << stopped << "\n" << (*cluster)->ReadLog();
}

// Every file in cluster-configs/ parses and sets valid flags (a flag given on the command line,
// here an invalid one, still wins and stops start-up before workers), and the CPU one serves.
TEST(ServingFailuresTest, EveryClusterConfigParsesAndTheCpuOneServes) {
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(SourceDir() + "/cluster-configs")) {
    if (entry.path().extension() != ".yaml") continue;
    ++files;
    auto result = RunCommand(
        {BinDir() + "/pagedllm-coordinator", "--config", entry.path().string(), "--max_waiting=0"},
        10000);
    ASSERT_TRUE(result.ok()) << entry.path() << ": " << result.status();
    EXPECT_EQ(result->first, 2) << entry.path() << ": " << result->second;
    EXPECT_THAT(result->second, HasSubstr("--max_waiting must be >= 1, got 0"))
        << entry.path() << ": the file itself was refused:\n"
        << result->second;
  }
  EXPECT_GE(files, 3);
  ClusterOptions options(ModelDir(), 2);
  options.extra_flags = {"--config=" + SourceDir() + "/cluster-configs/local-cpu-tp2.yaml"};
  auto cluster = Cluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const GenerateOutcome outcome = Generate((*cluster)->stub(), GreedyRequest({0, 476, 290}, 4));
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  EXPECT_EQ(outcome.token_ids.size(), 4u);
  EXPECT_TRUE((*cluster)->Stop().ok());
}

// 20 top logprobs of a sampled token: 20 distinct ids, most likely first, each a log-probability.
// Server reflection (what grpcurl and grpc_cli use) lists the public services and serves the
// file that defines Generation, with its methods.
TEST_F(ServingErrorsTest, ReflectionListsTheServicesAndDescribesGeneration) {
  namespace reflection = grpc::reflection::v1alpha;
  auto stub = reflection::ServerReflection::NewStub(
      grpc::CreateChannel(cluster_->address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = stub->ServerReflectionInfo(&context);
  reflection::ServerReflectionRequest request;
  request.set_list_services("");
  ASSERT_TRUE(stream->Write(request));
  reflection::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  std::set<std::string> services;
  for (const reflection::ServiceResponse& service : response.list_services_response().service()) {
    services.insert(service.name());
  }
  EXPECT_TRUE(services.count("pagedllm.v1.Generation")) << response.DebugString();
  EXPECT_TRUE(services.count("grpc.health.v1.Health")) << response.DebugString();
  EXPECT_FALSE(services.count("pagedllm.worker.v1.WorkerControl"))
      << "the worker protocol is not on the public port";

  request.set_file_containing_symbol("pagedllm.v1.Generation");
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_TRUE(response.has_file_descriptor_response()) << response.DebugString();
  bool found = false;
  for (const std::string& bytes : response.file_descriptor_response().file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto file;
    ASSERT_TRUE(file.ParseFromString(bytes));
    for (const google::protobuf::ServiceDescriptorProto& service : file.service()) {
      if (file.package() != "pagedllm.v1" || service.name() != "Generation") continue;
      found = true;
      std::set<std::string> methods;
      for (const auto& method : service.method()) methods.insert(method.name());
      EXPECT_TRUE(methods.count("Generate") && methods.count("GetStats")) << file.DebugString();
    }
  }
  EXPECT_TRUE(found);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(ServingErrorsTest, TwentyLogprobsWhileSampling) {
  v1::GenerateRequest request = GreedyRequest({0, 476, 290}, 8);
  request.mutable_sampling()->set_temperature(0.9f);
  request.mutable_sampling()->set_seed(5);
  request.mutable_sampling()->set_logprobs(20);
  const GenerateOutcome outcome = Generate(cluster_->stub(), request);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  ASSERT_EQ(outcome.logprobs.size(), outcome.token_ids.size());
  for (size_t t = 0; t < outcome.logprobs.size(); ++t) {
    const v1::TokenLogprob& token = outcome.logprobs[t];
    ASSERT_EQ(token.top_size(), 20) << "token " << t;
    std::set<int32_t> ids;
    for (int k = 0; k < 20; ++k) {
      EXPECT_LE(token.top(k).logprob(), 0.0f);
      if (k > 0) {
        EXPECT_LE(token.top(k).logprob(), token.top(k - 1).logprob()) << "rank " << k;
      }
      EXPECT_TRUE(ids.insert(token.top(k).token_id()).second) << "id twice at rank " << k;
      if (token.top(k).token_id() == token.token_id()) {
        EXPECT_EQ(token.top(k).logprob(), token.logprob());
      }
    }
    EXPECT_LE(token.logprob(), token.top(0).logprob());
  }
}

// --help lists every flag of the program (Abseil's default printed "No flags matched").
TEST(ServingFailuresTest, HelpListsTheFlags) {
  for (const char* program : {"pagedllm-coordinator", "pagedllm-worker", "pagedllm-client"}) {
    auto result = RunCommand({BinDir() + "/" + program, "--help"}, 10000);
    ASSERT_TRUE(result.ok()) << program << ": " << result.status();
    EXPECT_THAT(result->second, ::testing::Not(HasSubstr("No flags matched"))) << program;
    EXPECT_THAT(
        result->second,
        HasSubstr(std::string(program) == "pagedllm-client" ? "--max_tokens" : "--block_size"))
        << program;
  }
  auto coordinator = RunCommand({BinDir() + "/pagedllm-coordinator", "--help"}, 10000);
  ASSERT_TRUE(coordinator.ok());
  for (const char* flag : {"--preemption_mode", "--enable_prefix_caching", "--max_num_seqs"}) {
    EXPECT_THAT(coordinator->second, HasSubstr(flag));
  }
}

// --max_model_len beyond the model's positions is refused once the workers said what the model
// holds, and every process stops.
TEST(ServingFailuresTest, MaxModelLenBeyondThePositionsIsRefused) {
  ClusterOptions options(ModelDir(), 1);
  options.extra_flags = {"--max_model_len=5000"};
  auto cluster = Cluster::Start(options);
  ASSERT_FALSE(cluster.ok());
  EXPECT_THAT(std::string(cluster.status().message()),
              HasSubstr("--max_model_len 5000 exceeds the model's max_position_embeddings 1024"));
}

}  // namespace
}  // namespace pagedllm::testing
