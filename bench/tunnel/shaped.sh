#!/usr/bin/env bash
# Runs bench/tunnel in a network namespace of its own whose loopback carries
# the traffic between the two nodes at RATE (tc htb), and everything else
# (the forwarded programs' own loopback hops, the control API) unshaped.
# On the unshaped loopback of a 2-core machine every path is CPU-bound, and
# a tunnel pays four more kernel copies per byte than perf (its two TCP
# ends); a link-bound path is what a tunnel between two machines meets.
# Needs root. Usage: bench/tunnel/shaped.sh RATE BIN [bench/tunnel flags]
set -euo pipefail
rate=${1:?rate, e.g. 1gbit}; bin=${2:?overlay binary}; shift 2
ns=ovl-tunnel-shape
relay_port=4461 direct_port=4462
ip netns del "$ns" 2>/dev/null || true
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
tcx() { ip netns exec "$ns" tc "$@"; }
# default 0: unclassified packets bypass the shaper.
tcx qdisc add dev lo root handle 1: htb default 0
tcx class add dev lo parent 1: classid 1:20 htb rate "$rate"
for port in $relay_port $direct_port; do
  for dir in sport dport; do
    tcx filter add dev lo parent 1: protocol ip u32 match ip "$dir" "$port" 0xffff flowid 1:20
  done
done
go build -o bin/tunnelbench ./bench/tunnel
ip netns exec "$ns" bin/tunnelbench -bin "$bin" -relay-port $relay_port -direct-port $direct_port "$@"
