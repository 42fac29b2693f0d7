#include "tests/e2e/cluster.h"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"

namespace pagedllm::testing {

namespace {

using Clock = std::chrono::steady_clock;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Waits for `pid` up to timeout_ms; returns its wait status, or -1 if it is still running.
int WaitFor(pid_t pid, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Clock::now() < deadline) {
    int status = 0;
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

}  // namespace

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

// Overridable so that a relocated bundle runs the same tests on a GPU node.
std::string BinDir() {
  return EnvOr("PAGEDLLM_BIN_DIR", std::string(PAGEDLLM_BINARY_DIR) + "/bin");
}
std::string SourceDir() { return EnvOr("PAGEDLLM_SOURCE_DIR", PAGEDLLM_SOURCE_DIR); }
std::string TestDevice() { return EnvOr("PAGEDLLM_TEST_DEVICE", "cpu"); }

pid_t Spawn(const std::vector<std::string>& argv, const std::string& log_path) {
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    execvp(args[0], args.data());
    _exit(127);
  }
  return pid;
}

int PickFreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

absl::StatusOr<std::pair<int, std::string>> RunCommand(const std::vector<std::string>& argv,
                                                       int timeout_ms) {
  char log_template[] = "/tmp/pagedllm-cmd-XXXXXX";
  const int fd = mkstemp(log_template);
  close(fd);
  const pid_t pid = Spawn(argv, log_template);
  const int status = WaitFor(pid, timeout_ms);
  if (status == -1) {
    kill(-pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return absl::DeadlineExceededError(absl::StrCat(absl::StrJoin(argv, " "), " ran past ",
                                                    timeout_ms, " ms:\n", ReadFile(log_template)));
  }
  std::string output = ReadFile(log_template);
  unlink(log_template);
  return std::make_pair(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), output);
}

absl::StatusOr<std::unique_ptr<Cluster>> Cluster::Start(const ClusterOptions& options) {
  // PickFreePort's ports come from the ephemeral range, so an outgoing connection (a worker's,
  // or another test's) may take one before the coordinator binds it: then try other ports.
  absl::StatusOr<std::unique_ptr<Cluster>> cluster = StartOnce(options);
  for (int attempt = 1; attempt < 3 && !cluster.ok() &&
                        absl::StrContains(cluster.status().message(), "cannot listen");
       ++attempt) {
    cluster = StartOnce(options);
  }
  return cluster;
}

absl::StatusOr<std::unique_ptr<Cluster>> Cluster::StartOnce(const ClusterOptions& options) {
  std::unique_ptr<Cluster> cluster(new Cluster());
  const int port = PickFreePort();
  cluster->worker_port_ = PickFreePort();
  cluster->http_port_ = options.http ? PickFreePort() : 0;
  cluster->address_ = absl::StrCat("127.0.0.1:", port);
  cluster->log_path_ = absl::StrCat(::testing::TempDir(), "/pagedllm-cluster-", port, ".log");
  const std::string port_file = absl::StrCat(::testing::TempDir(), "/pagedllm-port-", port);
  unlink(port_file.c_str());
  std::vector<std::string> argv = {
      BinDir() + "/pagedllm-coordinator",
      "--model=" + options.model_dir,
      absl::StrCat("--tp=", options.tp),
      "--device=" + TestDevice(),
      "--dtype=" + EnvOr("PAGEDLLM_TEST_DTYPE", "auto"),
      // Several workers may share one GPU in tests (PAGEDLLM_SHARE_ONE_GPU).
      "--gpu_memory_utilization=" + EnvOr("PAGEDLLM_TEST_GPU_MEMORY_UTILIZATION", "0.2"),
      "--host=127.0.0.1",
      absl::StrCat("--port=", port),
      "--port_file=" + port_file,
      absl::StrCat("--http_port=", cluster->http_port_),
      // Stop() waits 30 s: a drain must end well before (a test's own flag comes later and wins).
      "--drain_timeout_s=10",
      absl::StrCat("--worker_port=", cluster->worker_port_),
      absl::StrCat("--block_size=", options.block_size),
      absl::StrCat("--num_kv_blocks=", options.num_kv_blocks),
      "--cpu_kv_cache_gib=0.25",
      "--mpirun_args=--oversubscribe --bind-to none",
      "--worker_env=PAGEDLLM_CPU_THREADS=1",
      "--worker_start_timeout_s=60",
      "--step_timeout_s=60",
  };
  if (!options.launch_workers) argv.push_back("--launch_workers=false");
  if (!options.api_key.empty()) argv.push_back("--api_key=" + options.api_key);
  cluster->api_key_ = options.api_key;
  argv.insert(argv.end(), options.extra_flags.begin(), options.extra_flags.end());
  unlink(cluster->log_path_.c_str());  // Spawn appends: no earlier run's lines
  cluster->pid_ = Spawn(argv, cluster->log_path_);
  if (!options.launch_workers && options.start_workers) {
    options.start_workers(cluster->worker_port_);
  }

  const auto deadline = Clock::now() + std::chrono::seconds(90);
  while (access(port_file.c_str(), F_OK) != 0) {
    int status = 0;
    if (waitpid(cluster->pid_, &status, WNOHANG) == cluster->pid_) {
      cluster->pid_ = -1;
      return absl::UnavailableError(
          absl::StrCat("the coordinator exited during start-up:\n", cluster->ReadLog()));
    }
    if (Clock::now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("the cluster did not start in 90 s:\n", cluster->ReadLog()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  cluster->stub_ = pagedllm::v1::Generation::NewStub(
      grpc::CreateChannel(cluster->address_, grpc::InsecureChannelCredentials()));
  return cluster;
}

std::string Cluster::ReadLog() const { return ReadFile(log_path_); }

std::vector<pid_t> Cluster::WorkerPids() const {
  std::vector<pid_t> pids;
  // The worker's --coordinator argument: 127.0.0.1:<port>, or another node's address (multi-node
  // tests) with this port.
  const std::string marker = absl::StrCat(":", worker_port_, " ");
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return pids;
  while (dirent* entry = readdir(proc)) {
    const pid_t pid = std::atoi(entry->d_name);
    if (pid <= 0) continue;
    std::string cmdline = ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
    for (char& c : cmdline) c = c == '\0' ? ' ' : c;
    if (cmdline.find("pagedllm-worker") != std::string::npos &&
        cmdline.find(marker) != std::string::npos && cmdline.find("mpirun") == std::string::npos) {
      pids.push_back(pid);
    }
  }
  closedir(proc);
  return pids;
}

absl::StatusOr<pagedllm::v1::ServerStats> Cluster::WaitForAllBlocksFree(int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  pagedllm::v1::ServerStats stats;
  while (true) {
    grpc::ClientContext context;
    if (!api_key_.empty()) context.AddMetadata("authorization", "Bearer " + api_key_);
    const grpc::Status status = stub_->GetStats(&context, pagedllm::v1::GetStatsRequest(), &stats);
    if (!status.ok()) return absl::UnavailableError(status.error_message());
    if (stats.num_free_blocks() == stats.num_total_blocks() && stats.num_running() == 0 &&
        stats.num_waiting() == 0) {
      return stats;
    }
    if (Clock::now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("blocks still in use: ", stats.num_total_blocks() - stats.num_free_blocks(),
                       " of ", stats.num_total_blocks(), ", running ", stats.num_running(),
                       ", waiting ", stats.num_waiting()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

absl::Status Cluster::Stop(int signal_number) {
  if (pid_ <= 0) return absl::OkStatus();
  kill(pid_, signal_number);
  absl::StatusOr<int> exit_status = WaitForExit(30000);
  if (!exit_status.ok()) return exit_status.status();
  if (*exit_status != 0) {
    return absl::InternalError(absl::StrCat("the coordinator exited with status ", *exit_status));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> Cluster::WaitForExit(int timeout_ms) {
  if (pid_ <= 0) return absl::FailedPreconditionError("the coordinator is not running");
  const int status = WaitFor(pid_, timeout_ms);
  const pid_t pid = pid_;
  if (status == -1) {
    kill(-pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    pid_ = -1;
    return absl::DeadlineExceededError(
        absl::StrCat("the coordinator did not exit within ", timeout_ms, " ms"));
  }
  // Give mpirun's children a moment to be reaped, then look for stragglers.
  for (int i = 0; i < 50 && !WorkerPids().empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const std::vector<pid_t> left = WorkerPids();
  pid_ = -1;
  if (!left.empty()) {
    for (pid_t worker : left) kill(worker, SIGKILL);
    return absl::InternalError(
        absl::StrCat(left.size(), " worker processes outlived the coordinator"));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Cluster::~Cluster() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    if (WaitFor(pid_, 20000) == -1) {
      kill(-pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
}

}  // namespace pagedllm::testing
