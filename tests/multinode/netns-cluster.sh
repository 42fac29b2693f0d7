#!/bin/sh
# Simulated cluster nodes on one Linux machine, for multi-node tests without a second machine.
# Node i of cluster NAME is the network namespace NAME-node<i>: loopback, and one cable (a veth
# pair, "eth0" on the node) into a bridge in the namespace NAME-switch; address 10.77.0.<i+1>/24,
# host name node<i> (given by `exec` and by the rsh agent netns-rsh, in a UTS namespace of their
# own). Nodes share the file system (binaries, models) and the process table, nothing else of the
# network: processes on two nodes talk TCP between their addresses, as on a cluster.
#
#   netns-cluster.sh up NAME N            create nodes 0..N-1 (needs root: CAP_SYS_ADMIN, CAP_NET_ADMIN)
#   netns-cluster.sh down NAME            kill every process on the nodes, delete the namespaces
#   netns-cluster.sh exec NAME I CMD...   run CMD on node I (its network, its host name)
#   netns-cluster.sh link NAME I up|down  plug / unplug node I's cable (at the switch)
#   netns-cluster.sh pids NAME I          the processes on node I, one pid a line
#   netns-cluster.sh kill NAME I          SIGKILL every process on node I (the node is lost)
#
# mpirun across the nodes (from node 0; PAGEDLLM_NETNS_CLUSTER tells the agent the cluster):
#   PAGEDLLM_NETNS_CLUSTER=NAME netns-cluster.sh exec NAME 0 mpirun --hostfile H -np 2 \
#     --mca plm_rsh_agent tests/multinode/netns-rsh --mca btl_tcp_if_include 10.77.0.0/24 \
#     --mca oob_tcp_if_include 10.77.0.0/24 PROGRAM
set -eu

usage() { sed -n '2,19p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
command=$1
name=$2
shift 2

node_ns() { echo "$name-node$1"; }

case "$command" in
  up)
    [ $# -eq 1 ] || usage
    nodes=$1
    if [ "$(id -u)" != 0 ]; then echo "netns-cluster: needs root (uid $(id -u))" >&2; exit 1; fi
    command -v ip > /dev/null || { echo "netns-cluster: no ip command (iproute2)" >&2; exit 1; }
    command -v unshare > /dev/null || { echo "netns-cluster: no unshare (util-linux)" >&2; exit 1; }
    # On any failure, leave nothing half made.
    trap '"$0" down "$name" 2> /dev/null || true' EXIT
    ip netns add "$name-switch"
    ip -n "$name-switch" link set lo up
    ip -n "$name-switch" link add switch type bridge
    ip -n "$name-switch" link set switch up
    i=0
    while [ "$i" -lt "$nodes" ]; do
      ns=$(node_ns "$i")
      ip netns add "$ns"
      ip -n "$ns" link set lo up
      ip -n "$name-switch" link add "port$i" type veth peer name eth0 netns "$ns"
      ip -n "$name-switch" link set "port$i" master switch
      ip -n "$name-switch" link set "port$i" up
      ip -n "$ns" addr add "10.77.0.$((i + 1))/24" dev eth0
      ip -n "$ns" link set eth0 up
      i=$((i + 1))
    done
    trap - EXIT
    ;;
  down)
    for ns in $(ip netns list | awk '{print $1}' | grep -E "^$name-(node[0-9]+|switch)\$" || true); do
      for pid in $(ip netns pids "$ns" 2> /dev/null || true); do
        [ "$pid" = $$ ] || kill -9 "$pid" 2> /dev/null || true
      done
      ip netns del "$ns" 2> /dev/null || true
    done
    ;;
  exec)
    [ $# -ge 2 ] || usage
    node=$1
    shift
    exec ip netns exec "$(node_ns "$node")" unshare --uts /bin/sh -c \
      'hostname "$0" && exec "$@"' "node$node" "$@"
    ;;
  link)
    [ $# -eq 2 ] || usage
    ip -n "$name-switch" link set "port$1" "$2"
    ;;
  pids)
    [ $# -eq 1 ] || usage
    ip netns pids "$(node_ns "$1")"
    ;;
  kill)
    [ $# -eq 1 ] || usage
    for pid in $(ip netns pids "$(node_ns "$1")"); do kill -9 "$pid" 2> /dev/null || true; done
    ;;
  *)
    usage
    ;;
esac
