#!/usr/bin/env bash
# podman as a real CNI runtime (its CNI backend embeds libcni): containers on a network
# of the plugin under test get addresses, talk to each other, and leave nothing behind
# after `podman rm`. All podman state (root, runroot, tmpdir, network config dir,
# containers.conf) lives in a scratch directory; nothing touches the host's config.
#   usage: podman-test.sh --target NAME [--ipam TYPE] [--cni-path DIRS] [--out FILE]
#                         [--prefix wk] [--subnet 10.246.1.0/24]
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/lib.sh"

TARGET=bridge IPAM=host-local CNIPATH=${CNI_PATH:-/usr/lib/cni} SUBNET=10.246.1.0/24
while [ $# -gt 0 ]; do
  case $1 in
    --target) TARGET=$2; shift ;; --ipam) IPAM=$2; shift ;; --cni-path) CNIPATH=$2; shift ;;
    --out) OUT=$2; shift ;; --prefix) PREFIX=$2; shift ;; --subnet) SUBNET=$2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
SUITE="podman/$TARGET+$IPAM"

missing=""
for c in podman runc conmon busybox jq; do command -v "$c" >/dev/null || missing="$missing $c"; done
if [ -n "$missing" ]; then
  emit "$SUITE" all skip "not installed:$missing" 0
  exit 0
fi

WORK=$(mktemp -d "/tmp/${PREFIX}-podman.XXXXXX")
NET="${PREFIX}pod$TARGET"
BRIDGE="${PREFIX}pbr$(head -c2 /dev/urandom | od -An -tx1 | tr -d ' \n')"
RUN_ID=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
A="${PREFIX}-a-$RUN_ID" B="${PREFIX}-b-$RUN_ID"
ROOTFS="$WORK/rootfs"

cleanup() {
  podman_ rm -f -t 0 "$A" "$B" >/dev/null 2>&1 || true
  ip link del "$BRIDGE" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# A busybox-static rootfs: enough for sh, ip, ping, nc and an httpd (busybox-static's
# wget segfaults on Debian 12, so HTTP is spoken through nc).
mkdir -p "$ROOTFS"/{bin,proc,sys,dev,etc,tmp,www} "$WORK"/{net.d,root,runroot,tmp}
cp "$(command -v busybox)" "$ROOTFS/bin/busybox"
for a in sh ip ping nc grep httpd sleep cat printf; do ln -s busybox "$ROOTFS/bin/$a"; done
echo "hello from $A" >"$ROOTFS/www/index.html"

plugin_dirs=$(tr ':' '\n' <<<"$CNIPATH" | jq -R . | jq -sc .)
cat >"$WORK/containers.conf" <<CONF
[network]
network_backend = "cni"
cni_plugin_dirs = $plugin_dirs
network_config_dir = "$WORK/net.d"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF="$WORK/containers.conf"

conf=$(target_conf "$TARGET") || exit 2
conf=${conf//@BRIDGE@/$BRIDGE}
jq -n --argjson c "$conf" --arg n "$NET" --arg s "$SUBNET" --arg i "$IPAM" --arg d "$WORK/ipam" \
  '{cniVersion:"1.0.0", name:$n, plugins:[$c + {ipam:{type:$i, ranges:[[{subnet:$s}]], routes:[{dst:"0.0.0.0/0"}], dataDir:$d}}]}' \
  >"$WORK/net.d/$NET.conflist"

# vfs: the containers run from --rootfs and need no image layers, and vfs also works
# when the suite itself runs inside a container (no overlay on overlay).
podman_() {
  podman --root "$WORK/root" --runroot "$WORK/runroot" --tmpdir "$WORK/tmp" --storage-driver vfs --runtime runc "$@"
}
# --network must come before --rootfs (everything after --rootfs DIR is the command).
run_() { # run_ [podman run options...] -- CMD...
  local opts=()
  while [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  podman_ run --network "$NET" --ulimit nofile=20000:20000 --ulimit nproc=1000:1000 "${opts[@]}" --rootfs "$ROOTFS" "$@"
}

in_subnet() { # ip -> true when inside $SUBNET (a /24)
  [ "${1%.*}" = "${SUBNET%.*}" ]
}

reservations() { ls "$WORK/ipam/$NET" 2>/dev/null | grep -E '^[0-9]+\.' || true; }

t_foreground() {
  local out ip
  out=$(run_ --rm -- /bin/ip -4 -o addr show eth0 2>&1) || fail "podman run: $(tail -1 <<<"$out")"
  ip=$(grep -o 'inet [0-9.]*' <<<"$out" | cut -d' ' -f2)
  [ -n "$ip" ] || fail "container eth0 has no IPv4 address: $out"
  in_subnet "$ip" || fail "container got $ip, not from $SUBNET"
  note "container got $ip"
  [ -z "$(reservations)" ] || fail "address still reserved after the --rm container exited: $(reservations)"
}

t_detached() {
  local out
  out=$(run_ -d --name "$A" -- /bin/httpd -f -p 8080 -h /www 2>&1) || fail "podman run -d: $(tail -1 <<<"$out")"
  local ip ns
  ip=$(podman_ inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$A") || fail "inspect"
  in_subnet "$ip" || fail "container A got '$ip', not from $SUBNET"
  ns=$(podman_ inspect -f '{{.NetworkSettings.SandboxKey}}' "$A")
  echo "$ip" >"$WORK/a.ip"; echo "$ns" >"$WORK/a.netns"
  [ "$(reservations)" = "$ip" ] || fail "IPAM store holds '$(reservations)', want $ip"
  note "A at $ip"
}

t_container_to_container() {
  local ip out
  ip=$(cat "$WORK/a.ip") || fail "no container A"
  # A's httpd may still be starting: a few tries.
  out=$(run_ --rm --name "$B" -- /bin/sh -c "ping -c1 -W2 $ip >/dev/null || exit 1
    for i in 1 2 3 4 5 6 7 8 9 10; do
      printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 2 $ip 8080 | grep -q 'hello from' && echo 'hello from A' && exit 0
      sleep 0.2
    done; exit 1" 2>&1) ||
    fail "B could not reach A at $ip: $(tail -1 <<<"$out")"
  grep -q "hello from" <<<"$out" || fail "unexpected answer from A: $out"
}

t_rm_cleans_up() {
  local ns
  ns=$(cat "$WORK/a.netns") || fail "no container A"
  podman_ rm -f -t 0 "$A" >/dev/null || fail "podman rm"
  [ -z "$(reservations)" ] || fail "addresses still reserved after rm: $(reservations)"
  [ ! -e "$ns" ] || fail "netns $ns left after rm"
  [ -z "$(podman_ ps -aq)" ] || fail "containers left: $(podman_ ps -a)"
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    [ -z "$(ip -o link show master "$BRIDGE")" ] || fail "veths left on $BRIDGE: $(ip -o link show master "$BRIDGE")"
  fi
  ! grep -q "^$NET-" <<<"$(ls /var/lib/cni/results 2>/dev/null)" || fail "libcni cache entries left in /var/lib/cni/results"
}

run_case "$SUITE" run-rm-gets-address t_foreground
run_case "$SUITE" run-detached-gets-address t_detached
run_case "$SUITE" container-to-container-ping-and-http t_container_to_container
run_case "$SUITE" rm-cleans-up t_rm_cleans_up
