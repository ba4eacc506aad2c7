#!/usr/bin/env bash
# The cnitool README's invocations, run with weft-cnitool (our cnitool-compatible
# driver on Debian's libcni): add / check / del NET NETNS with NETCONFPATH, CNI_PATH,
# CNI_ARGS, CAP_ARGS and CNI_IFNAME, against the plugin under test.
#   usage: cnitool-test.sh --tool PATH --target NAME [--ipam TYPE] [--cni-path DIRS]
#                          [--out FILE] [--prefix wk] [--subnet 10.247.1.0/24]
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/lib.sh"

TOOL= TARGET=ptp IPAM=host-local CNIPATH=${CNI_PATH:-/usr/lib/cni} SUBNET=10.247.1.0/24
while [ $# -gt 0 ]; do
  case $1 in
    --tool) TOOL=$2; shift ;; --target) TARGET=$2; shift ;; --ipam) IPAM=$2; shift ;;
    --cni-path) CNIPATH=$2; shift ;; --out) OUT=$2; shift ;; --prefix) PREFIX=$2; shift ;;
    --subnet) SUBNET=$2; shift ;; *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$TOOL" ] || { echo "--tool must name the weft-cnitool binary" >&2; exit 2; }
TOOL=$(realpath "$TOOL") # one case runs from /var/run/netns

SUITE="cnitool/$TARGET+$IPAM"
WORK=$(mktemp -d "/tmp/${PREFIX}-cnitool.XXXXXX")
NS="${PREFIX}ct$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')"
NET="${PREFIX}-cnitool-$TARGET"
BRIDGE="${PREFIX}ctbr$(head -c2 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export NETCONFPATH="$WORK/net.d" CNI_PATH="$CNIPATH" CNI_CACHE_DIR="$WORK/cache"
mkdir -p "$NETCONFPATH"

cleanup() {
  CNI_IFNAME=net1 CAP_ARGS='{"portMappings":[{"hostPort":18999,"containerPort":80,"protocol":"tcp"}]}' \
    "$TOOL" del "$NET-chain" "/var/run/netns/$NS" >/dev/null 2>&1 || true
  "$TOOL" del "$NET" "/var/run/netns/$NS" >/dev/null 2>&1 || true
  ip netns del "$NS" 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null || true
  ip link del "${BRIDGE}c" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

main_conf() { # the target plus IPAM on $1 (subnet) [bridge name]
  local conf
  conf=$(target_conf "$TARGET") || return 1
  conf=${conf//@BRIDGE@/${2:-$BRIDGE}}
  if [ "$TARGET" = ptp ] && [ "$IPAM" = host-local ]; then
    # Exactly the README's example (a single-plugin .conf, spec 0.4.0, ipMasq, "subnet")
    # with our own subnet and IPAM store.
    jq -cn --arg s "$1" --arg d "$WORK/ipam" --arg n "$NET" \
      '{cniVersion:"0.4.0", name:$n, type:"ptp", ipMasq:true, ipam:{type:"host-local", subnet:$s, routes:[{dst:"0.0.0.0/0"}], dataDir:$d}}'
  else
    jq -cn --argjson c "$conf" --arg s "$1" --arg d "$WORK/ipam" --arg n "$NET" --arg i "$IPAM" \
      '$c + {cniVersion:"0.4.0", name:$n, ipam:{type:$i, ranges:[[{subnet:$s}]], routes:[{dst:"0.0.0.0/0"}], dataDir:$d}}'
  fi
}

# The README writes 10-myptp.conf; we name the network after the prefix.
main_conf "$SUBNET" >"$NETCONFPATH/10-$NET.conf" || exit 2
ip netns add "$NS"
NSPATH="/var/run/netns/$NS"
EXPECTED_ID="cnitool-$(printf %s "$NSPATH" | sha512sum | cut -c1-20)"

t_usage() {
  local err
  if err=$("$TOOL" 2>&1 >/dev/null); then fail "no arguments must exit non-zero"; fi
  grep -q "add" <<<"$err" && grep -q "<net> <netns>" <<<"$err" || fail "usage text missing: $err"
}

t_add() {
  "$TOOL" add "$NET" "$NSPATH" >"$WORK/add.json" 2>"$WORK/add.err" || fail "add: $(cat "$WORK/add.err")"
  jq -e '.cniVersion == "0.4.0"' "$WORK/add.json" >/dev/null || fail "result is not a 0.4.0 result: $(head -c 300 "$WORK/add.json")"
  # cnitool prints the result with libcni's indentation (4 spaces).
  grep -q '^    "' <<<"$(sed -n 2p "$WORK/add.json")" || fail "result not indented like cnitool's"
  local ip
  ip=$(jq -r '.ips[0].address' "$WORK/add.json")
  grep -q "inet $ip " <<<"$(ip -n "$NS" addr)" || fail "ip -n $NS addr has no $ip"
}

t_check() { "$TOOL" check "$NET" "$NSPATH" || fail "check failed"; }

t_ping_gateway() {
  # The README pings 4.2.2.2; this suite never leaves the machine, so it pings the gateway.
  local gw
  gw=$(jq -r '.ips[0].gateway // empty' "$WORK/add.json")
  [ -n "$gw" ] || skip "result names no gateway"
  ip netns exec "$NS" ping -c1 -W2 "$gw" >/dev/null || fail "ping $gw from the pod failed"
}

t_cache_uses_cnitool_id() {
  ls "$CNI_CACHE_DIR/results/$NET-$EXPECTED_ID-eth0" >/dev/null 2>&1 ||
    fail "no libcni cache entry for container ID $EXPECTED_ID (have: $(ls "$CNI_CACHE_DIR/results" 2>/dev/null || true))"
}

t_del() {
  local ip
  ip=$(jq -r '.ips[0].address' "$WORK/add.json")
  "$TOOL" del "$NET" "$NSPATH" || fail "del failed"
  ! grep -q "inet $ip " <<<"$(ip -n "$NS" addr)" || fail "address $ip still in the pod after del"
  ! grep -rqs "$EXPECTED_ID" "$WORK/ipam" || fail "IPAM reservation left after del"
  ! grep -q "$EXPECTED_ID" <<<"$(iptables-save)" || fail "iptables rules for the container left after del"
  [ ! -e "$CNI_CACHE_DIR/results/$NET-$EXPECTED_ID-eth0" ] || fail "cache entry left after del"
}

t_del_twice() { "$TOOL" del "$NET" "$NSPATH" || fail "second del failed"; }

t_relative_netns() {
  # cnitool makes the netns path absolute, so add from /var/run/netns by bare name
  # and del by absolute path are the same container.
  (cd /var/run/netns && "$TOOL" add "$NET" "$NS" >/dev/null) || fail "add with a relative netns path"
  [ -e "$CNI_CACHE_DIR/results/$NET-$EXPECTED_ID-eth0" ] || fail "relative path gave another container ID"
  "$TOOL" del "$NET" "$NSPATH" || fail "del by absolute path"
  [ ! -e "$CNI_CACHE_DIR/results/$NET-$EXPECTED_ID-eth0" ] || fail "cache entry left"
}

t_conflist_env() {
  # A .conflist with portmap: CAP_ARGS reaches portmap (capability portMappings),
  # CNI_ARGS reaches the plugins, CNI_IFNAME names the pod interface.
  local main chain
  main=$(main_conf "${SUBNET%.*}.128/25" "${BRIDGE}c" | jq -c 'del(.cniVersion, .name) | .ipam.dataDir += "-chain"')
  if [ "$TARGET" = ptp ]; then main=$(jq -c 'del(.ipMasq)' <<<"$main"); fi
  chain=$(jq -cn --argjson m "$main" --arg n "$NET-chain" \
    '{cniVersion:"1.0.0", name:$n, plugins:[$m, {type:"portmap", capabilities:{portMappings:true}}]}')
  echo "$chain" >"$NETCONFPATH/20-$NET-chain.conflist"
  # DEL gets the same parameters as ADD (spec), CAP_ARGS included: portmap needs them.
  export CNI_IFNAME=net1 CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=conformance;K8S_POD_NAME=$NS" \
    CAP_ARGS='{"portMappings":[{"hostPort":18999,"containerPort":80,"protocol":"tcp"}]}'
  "$TOOL" add "$NET-chain" "$NSPATH" >"$WORK/chain.json" || fail "add of the conflist"
  jq -e '.cniVersion == "1.0.0"' "$WORK/chain.json" >/dev/null || fail "not a 1.0.0 result"
  jq -e '[.interfaces[] | select(.name == "net1" and .sandbox != null)] | length == 1' "$WORK/chain.json" >/dev/null ||
    fail "no sandbox interface net1 in the result"
  ip -n "$NS" link show net1 >/dev/null || fail "CNI_IFNAME=net1 not honoured"
  grep -q "$EXPECTED_ID" <<<"$(iptables-save -t nat)" || fail "portmap got no mapping (CAP_ARGS) for $EXPECTED_ID"
  "$TOOL" del "$NET-chain" "$NSPATH" || fail "del of the conflist"
  ! grep -q "$EXPECTED_ID" <<<"$(iptables-save -t nat)" || fail "portmap rules left after del"
  ! ip -n "$NS" link show net1 >/dev/null 2>&1 || fail "net1 left after del"
}

t_bad_cni_args() {
  local err
  if err=$(CNI_ARGS="FOO" "$TOOL" add "$NET" "$NSPATH" 2>&1); then fail "CNI_ARGS=FOO accepted"; fi
  grep -q 'invalid CNI_ARGS pair "FOO"' <<<"$err" || fail "unexpected message: $err"
}

t_unknown_network() {
  local err
  if err=$("$TOOL" add "${PREFIX}-no-such-net" "$NSPATH" 2>&1); then fail "unknown network accepted"; fi
  grep -q "no net configuration" <<<"$err" || fail "unexpected message: $err"
}

t_plugin_error() {
  local err out
  main_conf "10.999.0.0/24" | jq -c '.name += "-bad"' >"$NETCONFPATH/30-$NET-bad.conf"
  if out=$("$TOOL" add "$NET-bad" "$NSPATH" 2>"$WORK/bad.err"); then fail "bad subnet accepted"; fi
  [ -z "$out" ] || fail "stdout not empty on failure: $out"
  [ -s "$WORK/bad.err" ] || fail "no error message on stderr"
  "$TOOL" del "$NET-bad" "$NSPATH" >/dev/null 2>&1 || true
}

run_case "$SUITE" usage t_usage
run_case "$SUITE" readme-add t_add
run_case "$SUITE" readme-check t_check
run_case "$SUITE" readme-ping-gateway t_ping_gateway
run_case "$SUITE" container-id-from-netns-path t_cache_uses_cnitool_id
run_case "$SUITE" readme-del t_del
run_case "$SUITE" del-twice t_del_twice
run_case "$SUITE" relative-netns-path t_relative_netns
run_case "$SUITE" conflist-cap-args-cni-args-ifname t_conflist_env
run_case "$SUITE" bad-cni-args t_bad_cni_args
run_case "$SUITE" unknown-network t_unknown_network
run_case "$SUITE" plugin-error-on-stderr t_plugin_error
