#!/usr/bin/env bash
# The CNI conformance suite in one command (`npm run conformance`): builds the Go
# harnesses (Debian's Go + libcni, GOPATH mode, no downloads), runs every suite against
# the reference plugins (proving the suite) and against weft, and prints a summary
# table. Exit status 1 when any case fails.
#
# Environment:
#   CNI_PATH                         where weft's plugins are (default: dist/bin of this
#                                    repo); the reference dir is appended for the meta plugins
#   REF_CNI_PATH                     the reference plugins (default /usr/lib/cni)
#   WEFT_CONFORMANCE_GROUPS          reference,weft (default both)
#   WEFT_CONFORMANCE_SELFTEST_BROKEN=1  run the suites against a deliberately broken
#                                    plugin instead; the run must fail
#   WEFT_CONFORMANCE_OUT             JSON-lines results file (default: a temp file)
#   WEFT_CONFORMANCE_PREFIX          prefix of every scratch name (default wk)
#   WEFT_CONFORMANCE_BUILD           where the Go binaries go (default conformance/bin)
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
HERE="$REPO/conformance"
export PREFIX=${WEFT_CONFORMANCE_PREFIX:-wk}
BUILD=${WEFT_CONFORMANCE_BUILD:-$HERE/bin}
REF=${REF_CNI_PATH:-/usr/lib/cni}
WEFT_PATH="${CNI_PATH:-$REPO/dist/bin}:$REF"
GROUPS_=${WEFT_CONFORMANCE_GROUPS:-reference,weft}
export OUT=${WEFT_CONFORMANCE_OUT:-$(mktemp "/tmp/${PREFIX}-conformance-XXXXXX.jsonl")}
: >"$OUT"
source "$HERE/scripts/lib.sh"
unset NODE_EXTRA_CA_CERTS # CNI runtimes do not set it; it slows every node start

started=$(now_ms)
WORK=$(mktemp -d "/tmp/${PREFIX}-conformance.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

finish() {
  echo
  echo "results: $OUT ($(( ($(now_ms) - started) / 1000 )) s)"
  node "$HERE/scripts/summarize.mjs" "$OUT" --json "${OUT%.jsonl}.summary.json"
  exit $?
}

if [ "$(id -u)" != 0 ]; then
  emit conformance all skip "needs root (network namespaces, veths, iptables)" 0
  finish
fi

have_go=1
if ! command -v go >/dev/null || [ ! -d /usr/share/gocode/src/github.com/containernetworking/cni/libcni ] ||
  [ ! -d /usr/share/gocode/src/github.com/containernetworking/plugins/pkg/ns ]; then
  have_go=0
  go_reason="needs golang-go, golang-github-appc-cni-dev and golang-github-containernetworking-plugins-dev"
elif ! build_log=$(bash "$HERE/scripts/build.sh" "$BUILD" 2>&1); then
  emit conformance build fail "go build failed: $(tail -3 <<<"$build_log" | tr '\n' ' ')" 0
  finish
fi

go_suite() { # go_suite NAME BINARY ARGS...   (skip when Go is missing)
  local name=$1 bin=$2; shift 2
  if [ $have_go = 0 ]; then emit "$name" all skip "$go_reason" 0; return; fi
  echo "== $name" >&2
  "$BUILD/$bin" -prefix "$PREFIX" -out "$OUT" "$@" >/dev/null
}

shell_suite() { # shell_suite NAME SCRIPT ARGS...
  local name=$1 script=$2; shift 2
  echo "== $name" >&2
  bash "$HERE/scripts/$script" --prefix "$PREFIX" --out "$OUT" "$@"
}

cnitool_suite() {
  if [ $have_go = 0 ]; then emit "cnitool" all skip "$go_reason" 0; return; fi
  shell_suite cnitool cnitool-test.sh --tool "$BUILD/weft-cnitool" "$@"
}

# weft_ready DIRS: weft-cni answers VERSION with a supportedVersions list.
weft_ready() {
  local dir out
  for dir in ${1//:/ }; do
    [ -x "$dir/weft-cni" ] || continue
    out=$(CNI_COMMAND=VERSION "$dir/weft-cni" </dev/null 2>/dev/null)
    if jq -e '.supportedVersions | length > 0' <<<"$out" >/dev/null 2>&1; then return 0; fi
    weft_reason="weft-cni in $dir answers VERSION with: $(head -c 200 <<<"$out")"
    return 1
  done
  weft_reason="no weft-cni in $1"
  return 1
}

run_reference() {
  go_suite libcni libcni-harness -cni-path "$REF" -targets 'bridge;ptp' -ipam host-local -subnet-base 10.249
  go_suite spec-1.1.0 spec11-harness -cni-path "$REF" -targets 'bridge;ptp' -ipam host-local -subnet-base 10.248
  CNI_PATH=$REF cnitool_suite --target ptp --subnet 10.247.1.0/24
  CNI_PATH=$REF cnitool_suite --target bridge --subnet 10.247.2.0/24
  shell_suite podman podman-test.sh --cni-path "$REF" --target bridge --subnet 10.246.1.0/24
}

run_weft() {
  if ! weft_ready "$WEFT_PATH"; then
    emit weft availability skip "$weft_reason" 0
    return
  fi
  go_suite libcni libcni-harness -cni-path "$WEFT_PATH" -targets weft -ipam weft-host-local,host-local -strict -subnet-base 10.245
  # weft's IPAM on its own, behind the reference bridge.
  go_suite libcni libcni-harness -cni-path "$WEFT_PATH" -targets bridge -ipam weft-host-local -chain '' -subnet-base 10.243
  go_suite spec-1.1.0 spec11-harness -cni-path "$WEFT_PATH" -targets weft -ipam weft-host-local,host-local -subnet-base 10.244
  go_suite spec-1.1.0 spec11-harness -cni-path "$WEFT_PATH" -targets bridge -ipam weft-host-local -subnet-base 10.242
  CNI_PATH=$WEFT_PATH cnitool_suite --target weft --ipam weft-host-local --subnet 10.247.3.0/24
  shell_suite podman podman-test.sh --cni-path "$WEFT_PATH" --target weft --ipam weft-host-local --subnet 10.246.2.0/24
}

# Self-test: the same suites against plugins wrapped by scripts/broken-plugin.sh (ADD
# results lose "interfaces"). The run must end in failures, or the suite checks nothing.
run_broken() {
  local dir="$WORK/broken" name real
  mkdir -p "$dir"
  for real in "$REF/bridge" $(weft_ready "$WEFT_PATH" && echo "${WEFT_PATH%%:*}/weft-cni"); do
    name="${PREFIX}-broken-$(basename "$real")"
    sed "s|@DELEGATE@|$real|" "$HERE/scripts/broken-plugin.sh" >"$dir/$name"
    chmod +x "$dir/$name"
  done
  local bridge_conf="{\"type\":\"${PREFIX}-broken-bridge\",\"bridge\":\"@BRIDGE@\",\"isGateway\":true}"
  go_suite libcni libcni-harness -cni-path "$dir:$REF" -targets "broken-bridge=$bridge_conf" -ipam host-local -subnet-base 10.249
  TARGET_CONF=$bridge_conf CNI_PATH="$dir:$REF" cnitool_suite --target broken-bridge --subnet 10.247.1.0/24
  if [ -x "$dir/${PREFIX}-broken-weft-cni" ]; then
    local weft_conf="{\"type\":\"${PREFIX}-broken-weft-cni\",\"mode\":\"veth\",\"degraded\":true}"
    go_suite libcni libcni-harness -cni-path "$dir:$WEFT_PATH" -targets "broken-weft=$weft_conf" -ipam weft-host-local -chain '' -subnet-base 10.245
  fi
}

if [ "${WEFT_CONFORMANCE_SELFTEST_BROKEN:-0}" = 1 ]; then
  echo "SELF-TEST: running against deliberately broken plugins; failures are expected" >&2
  run_broken
else
  case ",$GROUPS_," in *,reference,*) run_reference ;; esac
  case ",$GROUPS_," in *,weft,*) run_weft ;; esac
fi
finish
