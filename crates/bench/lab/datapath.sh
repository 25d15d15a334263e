#!/usr/bin/env bash
# kinet's datapath rebuilt by hand in `kinet-dp-*` namespaces, to find where pod traffic's cost
# goes one factor at a time (docs/performance.md, issue 20). Needs root, iperf3, nft, ethtool.
#
#   kinet node exec --name C worker -- nft list ruleset > rules.nft   # a node's tables
#   crates/bench/lab/datapath.sh rules.nft ROUNDS SECONDS VARIANT...   # e.g. 5 2 raw same
#
# Topology: raw veth pair ra<->rb; underlay bridge `u`; nodes n1, n2 (eth0 on the underlay,
# cbr0, flannel.1 with VNI 1 on UDP 8472, the node tables from rules.nft); pods p1a, p1b on n1
# and p2a on n2. Each round runs every variant once (A, B, A, B…) so load drift on a shared
# machine hits all alike. Both iperf3 ends run at nice -20 on one CPU, and each run reports
# Gbit per CPU-second of the two processes (the softirq work they do counts as theirs), which
# other processes on the machine barely move. Namespaces are deleted on exit.
set -euo pipefail
RULES=$1 ROUNDS=$2 SECS=$3
shift 3
P=kinet-dp
n() { ip netns exec "$P-$1" "${@:2}"; }

down() { for ns in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do ip netns del "$ns"; done; }
trap down EXIT

pod() { # node pod ip
  ip netns add "$P-$2"
  ip -n "$P-$1" link add "v-$2" type veth peer name eth0 netns "$P-$2"
  ip -n "$P-$1" link set "v-$2" master cbr0 up
  ip -n "$P-$1" link set "v-$2" type bridge_slave hairpin on
  n "$2" ip link set lo up
  n "$2" ip link set eth0 up
  n "$2" ip addr add "$3/24" dev eth0
  n "$2" ip route add default via "${3%.*}.1"
}

node() { # node index
  ip netns add "$P-$1"
  ip -n $P-u link add "u-$1" type veth peer name eth0 netns "$P-$1"
  ip -n $P-u link set "u-$1" master br0 up
  n "$1" ip link set lo up
  n "$1" ip link set eth0 up
  n "$1" ip addr add "172.30.0.$(($2 + 1))/16" dev eth0
  n "$1" ip link add cbr0 type bridge
  n "$1" ip addr add "10.244.$2.1/24" dev cbr0
  n "$1" ip link set cbr0 up
  n "$1" ip link add flannel.1 type vxlan id 1 dstport 8472 nolearning local "172.30.0.$(($2 + 1))" dev eth0
  n "$1" ip addr add "10.244.$2.0/32" dev flannel.1
  n "$1" ip link set flannel.1 mtu 1450 up
  n "$1" sysctl -qw net.ipv4.ip_forward=1
}

peer() { # from-index to-index
  local mac
  mac=$(n "n$2" cat /sys/class/net/flannel.1/address)
  n "n$1" ip route add "10.244.$2.0/24" via "10.244.$2.0" dev flannel.1 onlink
  n "n$1" ip neigh add "10.244.$2.0" lladdr "$mac" dev flannel.1 nud permanent
  n "n$1" bridge fdb append "$mac" dev flannel.1 dst "172.30.0.$(($2 + 1))"
}

up() {
  down
  ip netns add $P-ra
  ip netns add $P-rb
  ip -n $P-ra link add eth0 type veth peer name eth0 netns $P-rb
  n ra ip addr add 10.99.0.1/24 dev eth0
  n rb ip addr add 10.99.0.2/24 dev eth0
  for s in ra rb; do n $s ip link set eth0 up; n $s ip link set lo up; done
  ip netns add $P-u
  n u ip link set lo up
  n u ip link add br0 type bridge
  n u ip link set br0 up
  node n1 1
  node n2 2
  pod n1 p1a 10.244.1.2
  pod n1 p1b 10.244.1.3
  pod n2 p2a 10.244.2.2
  peer 1 2
  peer 2 1
}

# Pod links' MTU (cbr0, the veths, eth0) on each node; with a route MTU for the default route.
mtu() { # mtu [route-mtu]
  for d in cbr0 v-p1a v-p1b; do n n1 ip link set $d mtu "$1"; done
  for d in cbr0 v-p2a; do n n2 ip link set $d mtu "$1"; done
  for p in p1a p1b p2a; do
    n $p ip link set eth0 mtu "$1"
    n $p ip route change default via "$(n $p ip route show default | awk '{print $3}')" ${2:+mtu $2}
  done
}
hostgw() {
  n n1 ip route replace 10.244.2.0/24 via 172.30.0.3 dev eth0
  n n2 ip route replace 10.244.1.0/24 via 172.30.0.2 dev eth0
}
untrack_vxlan() {
  for x in n1 n2; do
    n $x nft 'add table ip nt; add chain ip nt pre { type filter hook prerouting priority raw; }
      add chain ip nt out { type filter hook output priority raw; }
      add rule ip nt pre udp dport 8472 notrack; add rule ip nt out udp dport 8472 notrack'
  done
}
brnf() { n "$1" sysctl -qw "net.bridge.bridge-nf-call-iptables=$2"; }

# kinet before issue 20: pod MTU 1450 everywhere, every bridge through the ip hooks.
reset() {
  for x in n1 n2 u; do brnf $x 1; done
  for x in n1 n2; do n $x nft flush ruleset; n $x nft -f "$RULES"; done
  n n1 ip route replace 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink
  n n2 ip route replace 10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink
  mtu 1450
  for x in n1 n2; do n $x ethtool -K eth0 gro off >/dev/null; done
}
SAME="p1a p1b 10.244.1.2" CROSS="p1a p2a 10.244.1.2"
v_raw() { echo "ra rb 10.99.0.1"; }
v_same() { echo "$SAME"; }
v_same_1500() { mtu 1500; echo "$SAME"; }
v_same_routemtu() { mtu 1500 1450; echo "$SAME"; }
v_same_nobrnf() { brnf n1 0; echo "$SAME"; }
v_same_norules() { n n1 nft flush ruleset; echo "$SAME"; }
v_same_onlyct() {
  n n1 nft flush ruleset
  n n1 nft 'add table ip t; add chain ip t f { type filter hook forward priority 0; }; add rule ip t f ct state new counter'
  echo "$SAME"
}
v_cross() { echo "$CROSS"; }
v_cross_norules() { for x in n1 n2; do n $x nft flush ruleset; done; echo "$CROSS"; }
v_cross_gro() { for x in n1 n2; do n $x ethtool -K eth0 gro on >/dev/null; done; echo "$CROSS"; }
v_cross_untracked() { untrack_vxlan; echo "$CROSS"; }
v_cross_ubrnf0() { brnf u 0; echo "$CROSS"; }
# kinet after issue 20: untracked VXLAN, underlay bridge off the ip hooks, route MTU.
v_same_after() { v_same_routemtu; }
v_cross_after() { untrack_vxlan; brnf u 0; mtu 1500 1450; echo "$CROSS"; }
v_hostgw_same() { hostgw; mtu 1500; echo "$SAME"; }
v_hostgw_cross() { hostgw; mtu 1500; echo "$CROSS"; }

iperf() { # server-ns client-ns server-ip -> Gbit per CPU-second
  nice -n -20 taskset -c 1 ip netns exec "$P-$1" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
  local srv=$!
  for _ in $(seq 100); do n "$1" ss -ltn | grep -q :5201 && break; sleep 0.05; done
  nice -n -20 taskset -c 1 ip netns exec "$P-$2" iperf3 -c "$3" -p 5201 -t "$SECS" -J |
    python3 -c 'import json,sys
e = json.load(sys.stdin)["end"]; c = e["cpu_utilization_percent"]
print("%.2f" % (e["sum_received"]["bits_per_second"] / 1e9 / ((c["host_total"] + c["remote_total"]) / 100)))'
  wait $srv || true
}

up
declare -A R
for r in $(seq "$ROUNDS"); do
  for v in "$@"; do
    reset
    read -r s c ip < <("v_$v")
    g=$(iperf "$s" "$c" "$ip")
    R[$v]="${R[$v]:-} $g"
    echo "round $r $v $g" >&2
  done
done
for v in "$@"; do
  printf '%-18s median %s  (%s )\n' "$v" \
    "$(echo ${R[$v]} | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}')" "${R[$v]}"
done
