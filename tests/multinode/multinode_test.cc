// Multi-node serving, proven on one machine. Simulated nodes (netns_cluster.h): the coordinator
// and this test run on node0 (10.77.0.1); the workers run on node1 and node2, started by
// `mpirun --hostfile` through an rsh agent, as on a cluster, from a cluster-configs file with
// `hosts:` and `advertise_host`; their MPI collectives go over TCP between the nodes' addresses.
// node3 is a host outside the job. Checked:
//   - tp 2 over two nodes (one rank each) and tp 4 over two nodes (two each) give the golden
//     tokens and logprobs that tp 1 gives (transformers', within 1e-4);
//   - the handshake: a worker of another build, protocol or model is refused at connect naming
//     its host and what differs, and one connecting from a host outside the job is refused;
//   - losing a node mid-generation (every process on it killed, or its cable pulled) fails every
//     running request with UNAVAILABLE naming the rank and host within seconds, the surviving
//     ranks are torn down (none waits in a collective), and the group serves again once the node
//     is back.
// Needs root for the namespaces: without them every test is skipped, saying why.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <regex>
#include <thread>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/build_info.h"  // Fingerprint64
#include "common/read_file.h"
#include "google/protobuf/text_format.h"
#include "pagedllm/worker/v1/worker.pb.h"
#include "proto/worker_protocol.h"
#include "tests/e2e/cluster.h"
#include "tests/e2e/e2e_util.h"
#include "tests/multinode/netns_cluster.h"

namespace pagedllm::testing {
namespace {

using ::testing::HasSubstr;
namespace v1 = pagedllm::v1;
namespace wv1 = pagedllm::worker::v1;
using Clock = std::chrono::steady_clock;

constexpr int kCoordinatorNode = 0;
constexpr int kStrangerNode = 3;  // a host outside every job's hostfile
constexpr char kWorkerSecret[] = "multinode-secret-0123456789";

// Made once for the whole binary, before any gRPC thread exists: this process then lives on
// node0 with the coordinators it starts.
NetnsCluster* nodes = nullptr;
std::string* unavailable = nullptr;  // why there are no nodes

class NodesEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<NetnsCluster>> created = NetnsCluster::Create(4);
    absl::Status entered = created.ok() ? (*created)->Enter(kCoordinatorNode) : created.status();
    if (!entered.ok()) {
      unavailable = new std::string(entered.message());
      std::cerr << "multinode: no simulated nodes, every test is skipped: " << *unavailable << "\n";
      return;
    }
    nodes = created->release();
  }
  void TearDown() override {
    delete nodes;  // kills what is left on the nodes and deletes them
    nodes = nullptr;
    std::filesystem::remove_all(ScratchDir());
  }
  // This process's files: cluster configs, model copies.
  static std::string ScratchDir() {
    return absl::StrCat(::testing::TempDir(), "/pagedllm-multinode-", getpid());
  }
};
::testing::Environment* const kNodes = ::testing::AddGlobalTestEnvironment(new NodesEnvironment);

// A cluster-configs file: the workers on node1 and node2 (`slots` ranks each), the coordinator
// reached at node0's address.
std::string WriteClusterConfig(int slots) {
  std::filesystem::create_directories(NodesEnvironment::ScratchDir());
  const std::string path =
      absl::StrCat(NodesEnvironment::ScratchDir(), "/two-nodes-", slots, "-slots.yaml");
  std::ofstream(path) << "# The coordinator on node0, the workers on node1 and node2.\n"
                      << "advertise_host: " << NetnsCluster::Address(0) << "\n"
                      << "hosts:\n"
                      << "  - {host: " << NetnsCluster::Address(1) << ", slots: " << slots << "}\n"
                      << "  - {host: " << NetnsCluster::Address(2) << ", slots: " << slots << "}\n";
  return path;
}

// The cluster options of a job of `tp` ranks, tp / 2 on each of node1 and node2.
ClusterOptions MultiNodeOptions(const std::string& model_dir, int tp) {
  ClusterOptions options(model_dir, tp);
  options.extra_flags = {"--config=" + WriteClusterConfig(tp / 2),
                         "--mpirun_args=" + nodes->MpirunArgs()};
  return options;
}

// The node (1 or 2) a rank of a tp-rank job runs on: mpirun fills node1's slots first.
int NodeOfRank(int rank, int tp) { return 1 + rank / (tp / 2); }

bool Alive(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t state = text.rfind(')');
  return state != std::string::npos && state + 2 < text.size() && text[state + 2] != 'Z';
}

// The pagedllm-worker processes on `node`.
std::vector<pid_t> WorkersOn(int node) {
  std::vector<pid_t> workers;
  for (pid_t pid : nodes->Pids(node)) {
    absl::StatusOr<std::string> cmdline = ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
    if (cmdline.ok() && absl::StrContains(*cmdline, "pagedllm-worker") &&
        !absl::StrContains(*cmdline, "mpirun")) {
      workers.push_back(pid);
    }
  }
  return workers;
}

// Whether a process on `node` holds an established TCP connection between the addresses of
// `node` and `peer_node` (/proc/<pid>/net/tcp lists its network namespace's sockets).
bool HasTcpBetween(pid_t pid, int node, int peer_node) {
  const auto hex = [](int n) {  // the kernel's spelling of 10.77.0.<n+1>: little-endian hex
    return absl::StrCat(absl::Hex(n + 1, absl::kZeroPad2), "004D0A");
  };
  for (const char* table : {"tcp", "tcp6"}) {
    absl::StatusOr<std::string> text = ReadFile(absl::StrCat("/proc/", pid, "/net/", table));
    if (!text.ok()) continue;
    for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
      const std::vector<absl::string_view> fields =
          absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (fields.size() < 4 || fields[3] != "01") continue;  // ESTABLISHED
      if (absl::StrContains(absl::AsciiStrToUpper(fields[1]), hex(node) + ":") &&
          absl::StrContains(absl::AsciiStrToUpper(fields[2]), hex(peer_node) + ":")) {
        return true;
      }
    }
  }
  return false;
}

class MultiNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (nodes == nullptr) {
      GTEST_SKIP() << "no simulated nodes: " << (unavailable ? *unavailable : "not made");
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Serving across nodes: the golden tokens and logprobs.

struct ModelAndTp {
  std::string model;
  int tp;
};

class MultiNodeGoldenTest : public MultiNodeTest,
                            public ::testing::WithParamInterface<ModelAndTp> {};

// Every golden prompt at once with 5 top logprobs: the tokens of transformers (what tp 1 gives,
// golden_models_test), the chosen and top logprobs within 1e-4. The ranks came from the nodes
// the hostfile names, and MPI traffic went between node1's and node2's addresses.
TEST_P(MultiNodeGoldenTest, ServesTheGoldenTokensAcrossNodes) {
  const ModelAndTp param = GetParam();
  const nlohmann::json golden = LoadJson(GoldenModelDir(param.model) + "/golden.json");
  auto cluster = Cluster::Start(MultiNodeOptions(GoldenModelDir(param.model), param.tp));
  ASSERT_TRUE(cluster.ok()) << cluster.status();

  std::vector<v1::GenerateRequest> requests;
  for (const std::vector<int32_t>& prompt : GoldenPrompts(golden)) {
    requests.push_back(GreedyRequest(prompt, golden["max_new_tokens"].get<int>(), 5));
  }
  const std::vector<GenerateOutcome> outcomes = GenerateConcurrently((*cluster)->stub(), requests);
  for (size_t i = 0; i < outcomes.size(); ++i) {
    SCOPED_TRACE(absl::StrCat(param.model, " tp=", param.tp, " over 2 nodes, prompt ", i));
    const auto& test_case = golden["cases"][i];
    ASSERT_TRUE(outcomes[i].status.ok()) << outcomes[i].status.error_message() << "\n"
                                         << (*cluster)->ReadLog();
    const auto expected = test_case["continuation_ids"].get<std::vector<int32_t>>();
    const auto chosen = test_case["chosen_logprobs"].get<std::vector<double>>();
    ASSERT_EQ(outcomes[i].token_ids, expected);
    ASSERT_EQ(outcomes[i].logprobs.size(), expected.size());
    for (size_t step = 0; step < expected.size(); ++step) {
      const v1::TokenLogprob& got = outcomes[i].logprobs[step];
      EXPECT_NEAR(got.logprob(), chosen[step], 1e-4) << "step " << step;
      ASSERT_EQ(got.top_size(), 5);
      for (int k = 0; k < 5; ++k) {
        EXPECT_NEAR(got.top(k).logprob(), test_case["top5"][step][k][1].get<double>(), 1e-4)
            << "step " << step << " rank " << k;
      }
    }
  }

  const std::string log = (*cluster)->ReadLog();
  for (int rank = 0; rank < param.tp; ++rank) {
    const int node = NodeOfRank(rank, param.tp);
    EXPECT_THAT(log, HasSubstr(absl::StrCat("worker rank ", rank, " connected from ",
                                            NetnsCluster::Hostname(node), " (",
                                            NetnsCluster::Address(node), ")")));
  }
  const std::vector<pid_t> on_node1 = WorkersOn(1);
  ASSERT_EQ(on_node1.size(), static_cast<size_t>(param.tp / 2));
  EXPECT_TRUE(HasTcpBetween(on_node1[0], 1, 2))
      << "no TCP connection between node1 and node2: the collectives did not cross nodes";
  EXPECT_EQ(WorkersOn(kCoordinatorNode).size(), 0u) << "the coordinator's node runs no worker";
  const absl::Status stopped = (*cluster)->Stop();
  EXPECT_TRUE(stopped.ok()) << stopped << "\n" << (*cluster)->ReadLog();
  EXPECT_TRUE(WorkersOn(1).empty() && WorkersOn(2).empty()) << "workers outlived the coordinator";
}

INSTANTIATE_TEST_SUITE_P(
    TwoNodes, MultiNodeGoldenTest,
    ::testing::Values(ModelAndTp{"mha-untied", 2}, ModelAndTp{"mqa-llama3-rope", 4}),
    [](const ::testing::TestParamInfo<ModelAndTp>& info) {
      std::string name = absl::StrCat(info.param.model, "_tp", info.param.tp);
      for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
      return name;
    });

// ---------------------------------------------------------------------------------------------
// The handshake.

// Runs multinode_fake_hello on `node`: the coordinator's answer, "code <n>: <message>".
std::string FakeHelloFrom(int node, int worker_port, const wv1::WorkerHello& hello) {
  std::string text;
  google::protobuf::TextFormat::PrintToString(hello, &text);
  auto result = RunCommand(
      nodes->OnNode(node, {BinDir() + "/multinode_fake_hello",
                           absl::StrCat(NetnsCluster::Address(0), ":", worker_port), text}),
      30000);
  if (!result.ok()) return std::string(result.status().message());
  return result->second;
}

// A real worker (mpirun -np 1 on `node`) of `model_dir` dialling the coordinator: its exit status
// and output.
std::pair<int, std::string> WorkerFrom(int node, int worker_port, const std::string& model_dir) {
  auto result = RunCommand(
      nodes->OnNode(node, {"mpirun", "--allow-run-as-root", "-np", "1", "-x",
                           "PAGEDLLM_CPU_THREADS=1", BinDir() + "/pagedllm-worker", "--coordinator",
                           absl::StrCat(NetnsCluster::Address(0), ":", worker_port), "--model",
                           model_dir, "--cpu_kv_cache_gib", "0.01", "--connect_timeout_s", "10"}),
      60000);
  if (!result.ok()) return {-1, std::string(result.status().message())};
  return *result;
}

// A copy of `model` whose config.json says another rms_norm_eps: it loads, it is not the model.
std::string OtherModelLike(const std::string& model) {
  namespace fs = std::filesystem;
  const fs::path copy = fs::path(NodesEnvironment::ScratchDir()) / "other" / model;
  fs::remove_all(copy);
  fs::create_directories(copy);
  for (const auto& entry : fs::directory_iterator(GoldenModelDir(model))) {
    fs::copy(entry.path(), copy / entry.path().filename());
  }
  nlohmann::json config = LoadJson((copy / "config.json").string());
  config["rms_norm_eps"] = config["rms_norm_eps"].get<double>() * 10;
  std::ofstream((copy / "config.json").string()) << config.dump(2);
  return copy.string();
}

// A worker whose build, protocol or model differs from the coordinator's is refused at connect
// (FAILED_PRECONDITION) naming its host and what differs; a worker connecting from node3, a host
// outside the job, is refused (PERMISSION_DENIED). Fake hellos say what another build would say;
// real workers (mpirun on a node) show the refusal from the worker's side. The cluster serves on.
TEST_F(MultiNodeTest, WorkersOfAnotherBuildModelOrHostAreRefused) {
  setenv("PAGEDLLM_WORKER_SECRET", kWorkerSecret, 1);  // the fake hellos carry it
  auto cluster = Cluster::Start(MultiNodeOptions(GoldenModelDir("mha-untied"), 2));
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const int port = (*cluster)->worker_port();

  wv1::WorkerHello hello;  // what rank 0 of this job on node1 says
  hello.set_rank(0);
  hello.set_world_size(2);
  hello.set_hostname("node1");
  hello.set_pid(4242);
  hello.set_block_size(16);
  hello.set_num_kv_blocks(100);
  hello.mutable_model()->set_name("mha-untied");
  hello.mutable_model()->set_vocab_size(384);
  hello.mutable_model()->set_max_position_embeddings(512);
  hello.set_secret(kWorkerSecret);
  hello.set_protocol_revision(WorkerProtocolRevision());
  hello.set_protocol_fingerprint(WorkerProtocolFingerprint());
  absl::StatusOr<std::string> config = ReadFile(GoldenModelDir("mha-untied") + "/config.json");
  ASSERT_TRUE(config.ok());
  hello.set_model_config_hash(Fingerprint64(*config));

  // Another build: refused, and the refusal names the coordinator's build, which the other
  // hellos then carry (this test binary may be older than a coordinator rebuilt alone; each
  // hello below must differ in one thing only).
  wv1::WorkerHello other_build = hello;
  other_build.set_build_version("0.0.9+gdeadbeef0000");
  std::string answer = FakeHelloFrom(1, port, other_build);
  EXPECT_THAT(answer, HasSubstr("code 9:")) << answer;  // FAILED_PRECONDITION
  const std::string said = "worker rank 0 (host \"node1\" at 10.77.0.2, pid 4242) runs build "
                           "\"0.0.9+gdeadbeef0000\", the coordinator build \"";
  ASSERT_THAT(answer, HasSubstr(said));
  const size_t build_at = answer.find(said) + said.size();
  hello.set_build_version(answer.substr(build_at, answer.find('"', build_at) - build_at));
  EXPECT_TRUE(std::regex_match(hello.build_version(), std::regex(R"([0-9.]+(\+g[0-9a-f]{12})?)")))
      << hello.build_version();

  // The same hello as rank 0's on node1, from a host outside the job.
  wv1::WorkerHello stranger = hello;
  stranger.set_hostname("node3");
  answer = FakeHelloFrom(kStrangerNode, port, stranger);
  EXPECT_THAT(answer, HasSubstr("code 7:")) << answer;  // PERMISSION_DENIED
  EXPECT_THAT(answer, HasSubstr("connected from 10.77.0.4, which is not a host of this job"));

  wv1::WorkerHello old_protocol = hello;
  old_protocol.set_hostname("node2");
  old_protocol.set_protocol_revision(WorkerProtocolRevision() - 1);
  answer = FakeHelloFrom(2, port, old_protocol);
  EXPECT_THAT(answer, HasSubstr("code 9:")) << answer;
  EXPECT_THAT(answer, HasSubstr("(host \"node2\" at 10.77.0.3, pid 4242) speaks worker protocol "
                                "revision " +
                                std::to_string(WorkerProtocolRevision() - 1)));

  wv1::WorkerHello other_schema = hello;  // same revision, a schema nobody bumped it for
  other_schema.set_protocol_fingerprint(WorkerProtocolFingerprint() ^ 1);
  answer = FakeHelloFrom(1, port, other_schema);
  EXPECT_THAT(answer, HasSubstr("code 9:")) << answer;
  EXPECT_THAT(answer, HasSubstr("speaks worker protocol revision"));

  // A real worker on node2 with a model whose config.json differs: refused, and it says so and
  // exits non-zero.
  const std::string other_model = OtherModelLike("mha-untied");
  auto [status, output] = WorkerFrom(2, port, other_model);
  EXPECT_NE(status, 0) << output;
  EXPECT_THAT(output, HasSubstr("refused this worker: worker rank 0 (host \"node2\" at "
                                "10.77.0.3"));
  EXPECT_THAT(output, HasSubstr("loaded model \"mha-untied\" whose config.json (hash 0x"));
  EXPECT_THAT(output, HasSubstr("differs from the coordinator's " +
                                GoldenModelDir("mha-untied") + "/config.json"));

  // A real worker of the right model on node3, outside the job.
  std::tie(status, output) = WorkerFrom(kStrangerNode, port, GoldenModelDir("mha-untied"));
  EXPECT_NE(status, 0) << output;
  EXPECT_THAT(output, HasSubstr("refused this worker: worker rank 0 (host \"node3\" at 10.77.0.4"));
  EXPECT_THAT(output, HasSubstr("which is not a host of this job"));
  unsetenv("PAGEDLLM_WORKER_SECRET");

  // Every refusal is logged by the coordinator, which serves on.
  const std::string log = (*cluster)->ReadLog();
  EXPECT_THAT(log, HasSubstr("refused a worker connection: worker rank 0 (host \"node2\" at "
                             "10.77.0.3"));
  EXPECT_THAT(log, HasSubstr("refused a worker connection: worker rank 0 (host \"node3\" at "
                             "10.77.0.4"));
  EXPECT_EQ(HealthStatus((*cluster)->address()), "SERVING");
  const GenerateOutcome outcome = Generate((*cluster)->stub(), GreedyRequest({0, 5, 9}, 4));
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  EXPECT_EQ(outcome.token_ids.size(), 4u);
  const absl::Status stopped = (*cluster)->Stop();
  EXPECT_TRUE(stopped.ok()) << stopped << "\n" << (*cluster)->ReadLog();
}

// ---------------------------------------------------------------------------------------------
// Losing a node.

// Polls health until SERVING after having seen NOT_SERVING (up to timeout_s).
bool RecoveredWithin(const std::string& address, int timeout_s) {
  bool saw_not_serving = false;
  const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
  while (Clock::now() < deadline) {
    const std::string health = HealthStatus(address);
    saw_not_serving = saw_not_serving || health == "NOT_SERVING";
    if (saw_not_serving && health == "SERVING") return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// `count` long streams, each past its first chunk (running on the workers).
struct RunningStreams {
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>>> readers;
};

RunningStreams StartLongStreams(v1::Generation::Stub& stub, int count) {
  RunningStreams streams;
  for (int i = 0; i < count; ++i) {
    v1::GenerateRequest request = GreedyRequest({0, 476, 290, 100 + i}, 1000);
    request.mutable_sampling()->set_ignore_eos(true);
    streams.contexts.push_back(std::make_unique<grpc::ClientContext>());
    streams.readers.push_back(stub.Generate(streams.contexts.back().get(), request));
  }
  for (auto& reader : streams.readers) {
    v1::GenerateResponse response;
    EXPECT_TRUE(reader->Read(&response)) << "a stream ended before its first chunk";
  }
  return streams;
}

// Reads every stream to its end: each must fail UNAVAILABLE naming `rank` and its host within
// `limit_s` of `since`.
void ExpectAllFail(RunningStreams& streams, Clock::time_point since, double limit_s, int rank,
                   int node, const std::string& why) {
  for (auto& reader : streams.readers) {
    v1::GenerateResponse response;
    while (reader->Read(&response)) {
    }
    const grpc::Status status = reader->Finish();
    const double waited_s = std::chrono::duration<double>(Clock::now() - since).count();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
    EXPECT_THAT(status.error_message(),
                HasSubstr(absl::StrCat("worker rank ", rank, " (host \"",
                                       NetnsCluster::Hostname(node), "\" at ",
                                       NetnsCluster::Address(node), ", pid ")));
    EXPECT_THAT(status.error_message(), HasSubstr(why));
    EXPECT_LT(waited_s, limit_s) << status.error_message();
  }
}

// How many times the coordinator has launched workers.
int LaunchesIn(const std::string& log) {
  int launches = 0;
  for (size_t at = log.find("launching workers: "); at != std::string::npos;
       at = log.find("launching workers: ", at + 1)) {
    ++launches;
  }
  return launches;
}

// Waits up to timeout_s for every pid to be gone.
bool AllGoneWithin(const std::vector<pid_t>& pids, int timeout_s) {
  const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
  while (Clock::now() < deadline) {
    bool any = false;
    for (pid_t pid : pids) any = any || Alive(pid);
    if (!any) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// tp 2, rank 0 on node1 and rank 1 on node2, three long streams running. node2 is lost twice:
//   1. every process on it is killed: the streams fail UNAVAILABLE naming rank 1 on node2 within
//      2 s; the job is torn down (rank 0 on node1 exits, none waits in a collective) and a new
//      one serves;
//   2. its cable is pulled: nothing more comes from it, so the streams fail within the 3 s of
//      heartbeat silence (plus 3 s of slack), rank 0 is torn down although it was blocked in a
//      collective with node2, the job launched while the node is away cannot start and the
//      cluster stays NOT_SERVING, and once the cable is back it serves again, with the same
//      tokens.
TEST_F(MultiNodeTest, LosingANodeFailsItsStreamsAndTheGroupReturnsWithTheNode) {
  ClusterOptions options = MultiNodeOptions(SourceDir() + "/models/pagedllm-tiny-py", 2);
  options.extra_flags.push_back("--max_restarts=20");
  // A job launched while a node is away never starts there (its orted cannot call back, and
  // mpirun waits for it): the start timeout ends that launch and the next one is tried.
  options.extra_flags.push_back("--worker_start_timeout_s=10");
  auto cluster = Cluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  v1::Generation::Stub& stub = (*cluster)->stub();
  const v1::GenerateRequest short_request = GreedyRequest({0, 5, 9, 11}, 12);
  const GenerateOutcome before = Generate(stub, short_request);
  ASSERT_TRUE(before.status.ok()) << before.status.error_message();

  {
    SCOPED_TRACE("every process on node2 killed");
    RunningStreams streams = StartLongStreams(stub, 3);
    const std::vector<pid_t> survivors = WorkersOn(1);
    ASSERT_EQ(survivors.size(), 1u);
    const auto lost_at = Clock::now();
    ASSERT_TRUE(nodes->KillAll(2).ok());
    ExpectAllFail(streams, lost_at, 2.0, 1, 2, "disconnected");
    EXPECT_TRUE(AllGoneWithin(survivors, 10)) << "rank 0 on node1 outlived its job";
    ASSERT_TRUE(RecoveredWithin((*cluster)->address(), 60)) << (*cluster)->ReadLog();
    const GenerateOutcome after = Generate(stub, short_request);
    EXPECT_TRUE(after.status.ok()) << after.status.error_message();
    EXPECT_EQ(after.token_ids, before.token_ids);
  }
  {
    SCOPED_TRACE("node2's cable pulled, then plugged back");
    RunningStreams streams = StartLongStreams(stub, 3);
    const std::vector<pid_t> survivors = WorkersOn(1);
    const std::vector<pid_t> cut_off = WorkersOn(2);
    ASSERT_EQ(survivors.size(), 1u);
    const auto lost_at = Clock::now();
    ASSERT_TRUE(nodes->SetLink(2, false).ok());
    ExpectAllFail(streams, lost_at, 6.0, 1, 2, "sent no heartbeat");
    EXPECT_TRUE(AllGoneWithin(survivors, 15)) << "rank 0 on node1 waits on in a collective";
    // The supervisor launches a new job while node2 is away: it cannot start there (it fails by
    // the start timeout and is tried again), and the cluster stays NOT_SERVING...
    const int launches = LaunchesIn((*cluster)->ReadLog());
    for (int i = 0; i < 300 && LaunchesIn((*cluster)->ReadLog()) == launches; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_GT(LaunchesIn((*cluster)->ReadLog()), launches) << (*cluster)->ReadLog();
    std::this_thread::sleep_for(std::chrono::seconds(1));
    EXPECT_EQ(HealthStatus((*cluster)->address()), "NOT_SERVING");
    // ...until the node is back.
    ASSERT_TRUE(nodes->SetLink(2, true).ok());
    ASSERT_TRUE(RecoveredWithin((*cluster)->address(), 60)) << (*cluster)->ReadLog();
    const GenerateOutcome after = Generate(stub, short_request);
    EXPECT_TRUE(after.status.ok()) << after.status.error_message();
    EXPECT_EQ(after.token_ids, before.token_ids);
    // What ran on node2 while it was away learns its job is gone once it is back.
    EXPECT_TRUE(AllGoneWithin(cut_off, 30)) << "the cut-off rank 1 outlived its job";
  }
  EXPECT_THAT((*cluster)->ReadLog(), HasSubstr("restart 2 of at most"));
  const absl::Status stopped = (*cluster)->Stop();
  EXPECT_TRUE(stopped.ok()) << stopped << "\n" << (*cluster)->ReadLog();
}

}  // namespace
}  // namespace pagedllm::testing
