#!/usr/bin/env bash
# Policy datapath benchmark (not a test): TCP_RR latency (sockperf ping-pong) and throughput (iperf3)
# between two pods, with no policy, weft with 1 and 5,000 policy entries, and iptables enforcing the
# same rules (one rule per entry, after the usual ESTABLISHED,RELATED accept) in the same run.
# Everything happens in namespaces this script makes (prefix wbbench); it cleans up on exit.
# Usage: sudo bash bpf/bench/policy-bench.sh [seconds-per-measurement (default 3)]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-3}
unset NODE_EXTRA_CA_CERTS
for c in sockperf iperf3 iptables-restore jq node; do command -v $c >/dev/null || { echo "needs $c" >&2; exit 1; }; done
make -s -C bpf

TAG=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
R=wbbenchr$TAG A=wbbencha$TAG B=wbbenchb$TAG A2=wbbenchc$TAG B2=wbbenchd$TAG
PIN=/sys/fs/bpf/weft-test-wbbench$TAG
WORK=$(mktemp -d /tmp/weft-wbbench-XXXX)
cleanup() {
  set +e
  [ -f "$WORK/attach.cjs" ] && node "$WORK/attach.cjs" destroy "$(cfg 1)" >/dev/null 2>&1
  for ns in $A $B $A2 $B2 $R; do ip netns pids $ns 2>/dev/null | xargs -r kill 2>/dev/null; ip netns del $ns 2>/dev/null; done
  rm -rf "$WORK" "$PIN"
}
trap cleanup EXIT

mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
ip netns add $R
ip -n $R link set lo up
ip netns exec $R sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
n=0
for pod in $A $B; do
  n=$((n + 1))
  ip netns add $pod
  ip -n $R link add wbv$n type veth peer name eth0 netns $pod
  rmac=$(ip -n $R -j link show wbv$n | jq -r '.[0].address')
  pmac=$(ip -n $pod -j link show eth0 | jq -r '.[0].address')
  ip -n $pod link set lo up
  ip -n $pod addr add 10.252.0.$n/32 dev eth0
  ip -n $pod link set eth0 up
  ip -n $pod route add 169.254.1.1 dev eth0 scope link
  ip -n $pod route add default via 169.254.1.1 dev eth0
  ip -n $pod neigh add 169.254.1.1 lladdr "$rmac" dev eth0 nud permanent
  ip -n $R link set wbv$n up
  ip -n $R route add 10.252.0.$n/32 dev wbv$n
  ip -n $R neigh add 10.252.0.$n lladdr "$pmac" dev wbv$n nud permanent
done
A_IP=10.252.0.1

cfg() {
  printf '{"pinRoot":"%s","stateDir":"%s/state","objectDir":"%s/bpf/build","routerNetns":"/var/run/netns/%s","a":{"hostIf":"wbv1","ipv4":"10.252.0.1"},"b":{"hostIf":"wbv2","ipv4":"10.252.0.2"},"entries":%d}' \
    "$PIN" "$WORK" "$PWD" "$R" "$1"
}
npx esbuild bpf/bench/bench-attach.ts --bundle --platform=node --format=cjs --log-level=error --outfile="$WORK/attach.cjs"
export WEFT_NATIVE_DIR=$PWD/libs/native/build/Release

# The reference: two more pods on the reference bridge plugin + host-local (bridge in the router
# netns, exactly as the plugin makes it on a node), no policy at all.
bridge_add() { # bridge_add NETNS CONTAINER_ID: prints the pod's address
  ip netns add "$1"
  printf '{"cniVersion":"1.0.0","name":"wbbench","type":"bridge","bridge":"wbbr%s","isGateway":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.253.0.0/24"}]],"dataDir":"%s/ipam"}}' "$TAG" "$WORK" |
    ip netns exec $R env CNI_COMMAND=ADD CNI_CONTAINERID="$2" CNI_NETNS="/var/run/netns/$1" CNI_IFNAME=eth0 \
      CNI_PATH=/usr/lib/cni /usr/lib/cni/bridge | jq -r '.ips[0].address | split("/")[0]'
}
A2_IP=$(bridge_add $A2 wbbench-a2)
bridge_add $B2 wbbench-b2 >/dev/null

for pod in "$A $A_IP" "$A2 $A2_IP"; do
  set -- $pod
  ip netns exec "$1" sockperf sr --tcp -i "$2" -p 11111 >/dev/null 2>&1 &
  ip netns exec "$1" iperf3 -s -p 5201 -D >/dev/null 2>&1
done
sleep 0.5

measure() { # measure [CLIENT_NETNS SERVER_IP]: prints "latency_us throughput_gbps"
  local client=${1:-$B} server=${2:-$A_IP} lat gbps
  lat=$(ip netns exec "$client" sockperf pp --tcp -i "$server" -p 11111 -t "$SECS" 2>&1 | sed -n 's/.*avg-latency=\([0-9.]*\).*/\1/p' | tail -1)
  gbps=$(ip netns exec "$client" iperf3 -c "$server" -p 5201 -t "$SECS" -J | jq '.end.sum_received.bits_per_second / 1e9')
  printf '%s %.2f\n' "${lat:-nan}" "$gbps"
}

iptables_rules() { # $1 entries: one FORWARD rule per entry, the last lets B in
  {
    echo '*filter'
    echo ':FORWARD DROP [0:0]'
    echo '-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT'
    echo "-A FORWARD ! -d $A_IP -j ACCEPT"
    for ((i = 1; i < $1; i++)); do echo "-A FORWARD -s 10.$((100 + i / 65536)).$(((i / 256) % 256)).$((i % 256)) -d $A_IP -p tcp --dport 80 -j ACCEPT"; done
    echo "-A FORWARD -s 10.252.0.2 -d $A_IP -p tcp -j ACCEPT"
    echo 'COMMIT'
  } | ip netns exec $R iptables-restore
}
iptables_off() { printf '*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n' | ip netns exec $R iptables-restore; }

declare -A LAT GBPS
run() { # run NAME [CLIENT_NETNS SERVER_IP]
  local out
  out=$(measure "${@:2}")
  LAT[$1]=${out% *}
  GBPS[$1]=${out#* }
}

run "bridge (reference)" $B2 "$A2_IP"
run "no policy"
for n in 1 5000; do
  node "$WORK/attach.cjs" attach "$(cfg $n)"
  run "weft $n"
  node "$WORK/attach.cjs" destroy "$(cfg $n)"
  iptables_rules $n
  run "iptables $n"
  iptables_off
done

base_lat=${LAT["no policy"]} base_gbps=${GBPS["no policy"]}
printf '\n%-20s %14s %10s %16s %10s\n' setup "TCP_RR avg us" "x base" "throughput Gb/s" "x base"
for k in "bridge (reference)" "no policy" "weft 1" "iptables 1" "weft 5000" "iptables 5000"; do
  printf '%-20s %14s %10s %16s %10s\n' "$k" "${LAT[$k]}" \
    "$(awk -v a="${LAT[$k]}" -v b="$base_lat" 'BEGIN{printf "%.2f", a/b}')" "${GBPS[$k]}" \
    "$(awk -v a="${GBPS[$k]}" -v b="$base_gbps" 'BEGIN{printf "%.2f", a/b}')"
done
echo "(x base: against \"no policy\", the same routed veth pods without weft's programs; sockperf ping-pong over one TCP connection, iperf3 one stream, ${SECS}s each; kernel $(uname -r))"
