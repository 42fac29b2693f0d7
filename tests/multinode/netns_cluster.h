// Test harness: simulated cluster nodes on one machine (netns-cluster.sh): network namespaces
// joined by veth cables to a bridge, each with its address (10.77.0.<i+1>) and host name
// (node<i>), and the rsh agent (netns-rsh) with which `mpirun --hostfile` starts orted and the
// workers on each node over real TCP between the addresses. Needs root; Create() says why when it
// cannot make namespaces, and the tests skip with that reason.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace pagedllm::testing {

class NetnsCluster {
 public:
  // Nodes 0..num_nodes-1 of a cluster named after this process (namespaces of clusters whose
  // process is gone are deleted first). UNAVAILABLE saying why when they cannot be made.
  static absl::StatusOr<std::unique_ptr<NetnsCluster>> Create(int num_nodes);
  ~NetnsCluster();  // leaves the node it entered, kills every process on the nodes, deletes them
  NetnsCluster(const NetnsCluster&) = delete;
  NetnsCluster& operator=(const NetnsCluster&) = delete;

  const std::string& name() const { return name_; }
  int num_nodes() const { return num_nodes_; }
  static std::string Address(int node);   // "10.77.0.<node+1>"
  static std::string Hostname(int node);  // "node<node>"
  static std::string Subnet() { return "10.77.0.0/24"; }
  static std::string Script();    // tests/multinode/netns-cluster.sh
  static std::string RshAgent();  // tests/multinode/netns-rsh

  // Moves the calling thread, and every thread and process it starts later, onto `node`. Call it
  // before any other thread exists (gRPC's would stay where they were).
  absl::Status Enter(int node);

  // `argv` run on `node` (its network and host name): the command line to Spawn or RunCommand.
  std::vector<std::string> OnNode(int node, const std::vector<std::string>& argv) const;
  // The processes on `node` (this one excepted).
  std::vector<pid_t> Pids(int node) const;
  // SIGKILL to every process on `node`, as if it lost power.
  absl::Status KillAll(int node) const;
  // Plugs (true) or unplugs `node`'s cable at the switch.
  absl::Status SetLink(int node, bool up) const;

  // mpirun arguments that launch over these nodes: the rsh agent, no tree spawn, TCP for MPI and
  // Open MPI's own traffic on the nodes' subnet only. The agent finds the cluster through
  // PAGEDLLM_NETNS_CLUSTER, which Create() sets in this process's environment.
  std::string MpirunArgs() const;

 private:
  NetnsCluster(std::string name, int num_nodes) : name_(std::move(name)), num_nodes_(num_nodes) {}
  std::string name_;
  int num_nodes_ = 0;
  int home_netns_fd_ = -1;  // the namespace before Enter()
};

}  // namespace pagedllm::testing
