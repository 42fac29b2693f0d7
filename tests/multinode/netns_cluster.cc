#include "tests/multinode/netns_cluster.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/e2e/cluster.h"

namespace pagedllm::testing {

namespace {

constexpr char kPrefix[] = "pdlmn";  // cluster names: pdlmn<pid of the test>

// Deletes the namespaces of clusters whose test process is gone (a test killed mid-run).
void RemoveStaleClusters() {
  absl::StatusOr<std::pair<int, std::string>> listed = RunCommand({"ip", "netns", "list"}, 10000);
  if (!listed.ok() || listed->first != 0) return;
  for (absl::string_view line : absl::StrSplit(listed->second, '\n', absl::SkipEmpty())) {
    absl::string_view ns = line.substr(0, line.find(' '));
    if (!absl::ConsumePrefix(&ns, kPrefix)) continue;
    const absl::string_view pid_text = ns.substr(0, ns.find('-'));
    int pid = 0;
    if (!absl::SimpleAtoi(pid_text, &pid) || pid == getpid() || kill(pid, 0) == 0) continue;
    (void)RunCommand({NetnsCluster::Script(), "down", absl::StrCat(kPrefix, pid_text)}, 30000);
  }
}

}  // namespace

std::string NetnsCluster::Address(int node) { return absl::StrCat("10.77.0.", node + 1); }
std::string NetnsCluster::Hostname(int node) { return absl::StrCat("node", node); }
std::string NetnsCluster::Script() { return SourceDir() + "/tests/multinode/netns-cluster.sh"; }
std::string NetnsCluster::RshAgent() { return SourceDir() + "/tests/multinode/netns-rsh"; }

absl::StatusOr<std::unique_ptr<NetnsCluster>> NetnsCluster::Create(int num_nodes) {
  if (geteuid() != 0) {
    return absl::UnavailableError(
        absl::StrCat("simulated nodes need root (network namespaces); running as uid ", geteuid()));
  }
  RemoveStaleClusters();
  std::unique_ptr<NetnsCluster> cluster(
      new NetnsCluster(absl::StrCat(kPrefix, getpid()), num_nodes));
  absl::StatusOr<std::pair<int, std::string>> up =
      RunCommand({Script(), "up", cluster->name_, absl::StrCat(num_nodes)}, 30000);
  if (!up.ok()) return absl::UnavailableError(up.status().message());
  if (up->first != 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot create network namespaces here (", Script(), " up exited with ", up->first,
        "): ", absl::StripTrailingAsciiWhitespace(up->second)));
  }
  setenv("PAGEDLLM_NETNS_CLUSTER", cluster->name_.c_str(), 1);
  return cluster;
}

NetnsCluster::~NetnsCluster() {
  if (home_netns_fd_ >= 0) {
    setns(home_netns_fd_, CLONE_NEWNET);
    close(home_netns_fd_);
  }
  (void)RunCommand({Script(), "down", name_}, 60000);
}

absl::Status NetnsCluster::Enter(int node) {
  const std::string path = absl::StrCat("/run/netns/", name_, "-node", node);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  if (home_netns_fd_ < 0) home_netns_fd_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  const int entered = setns(fd, CLONE_NEWNET);
  const int error = errno;
  close(fd);
  if (entered != 0) {
    return absl::UnavailableError(absl::StrCat("setns(", path, "): ", std::strerror(error)));
  }
  return absl::OkStatus();
}

std::vector<std::string> NetnsCluster::OnNode(int node,
                                              const std::vector<std::string>& argv) const {
  std::vector<std::string> command = {Script(), "exec", name_, absl::StrCat(node)};
  command.insert(command.end(), argv.begin(), argv.end());
  return command;
}

std::vector<pid_t> NetnsCluster::Pids(int node) const {
  std::vector<pid_t> pids;
  absl::StatusOr<std::pair<int, std::string>> listed =
      RunCommand({Script(), "pids", name_, absl::StrCat(node)}, 10000);
  if (!listed.ok()) return pids;
  for (absl::string_view line : absl::StrSplit(listed->second, '\n', absl::SkipEmpty())) {
    pid_t pid = 0;
    if (absl::SimpleAtoi(line, &pid) && pid != getpid()) pids.push_back(pid);
  }
  return pids;
}

absl::Status NetnsCluster::KillAll(int node) const {
  for (pid_t pid : Pids(node)) kill(pid, SIGKILL);
  return absl::OkStatus();
}

absl::Status NetnsCluster::SetLink(int node, bool up) const {
  absl::StatusOr<std::pair<int, std::string>> done =
      RunCommand({Script(), "link", name_, absl::StrCat(node), up ? "up" : "down"}, 10000);
  if (!done.ok()) return done.status();
  if (done->first != 0) return absl::InternalError(done->second);
  return absl::OkStatus();
}

std::string NetnsCluster::MpirunArgs() const {
  return absl::StrCat("--bind-to none --mca plm_rsh_agent ", RshAgent(),
                      " --mca plm_rsh_no_tree_spawn 1 --mca btl_tcp_if_include ", Subnet(),
                      " --mca oob_tcp_if_include ", Subnet());
}

}  // namespace pagedllm::testing
