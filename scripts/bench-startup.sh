#!/usr/bin/env bash
# Start-up cost of the weft CNI executable, side by side with the reference Go plugin:
# the CNI VERSION command of every build variant, measured with hyperfine in one run.
#
#   scripts/bench-startup.sh                  # weft-cni, 50 runs each
#   PROGRAM=weft-host-local RUNS=100 scripts/bench-startup.sh
#
# Variants (each built fresh into a temp dir by apps/cni-plugin/bundle.mjs):
#   sea:codecache          the single executable, one chunk per program, V8 code cache (the default)
#   sea:codecache 1-file   the same with every program inside weft.cjs (--single-file)
#   sea:plain              chunks, no code cache
#   sea:snapshot           chunks, main script from a V8 startup snapshot
#   node bundle            `node weft.cjs` (+ chunks/) invoked through a link named like the program
# For weft-cni, whose executable is the C shim (apps/cni-plugin/shim): the sea rows are the shim
# with no agent (it execs weft), and "shim -> weft-agent" is the shim answered by a running agent's
# CNI server (root; via `env WEFT_CNI_SOCKET=...`, so it includes one exec of env).
set -euo pipefail
cd "$(dirname "$0")/.."
PROGRAM=${PROGRAM:-weft-cni}
RUNS=${RUNS:-50}
REFERENCE=${REFERENCE:-/usr/lib/cni/host-local}
command -v hyperfine >/dev/null || { echo "bench-startup: needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
[ -x "$REFERENCE" ] || { echo "bench-startup: needs $REFERENCE (apt-get install containernetworking-plugins)" >&2; exit 1; }

# An inherited NODE_EXTRA_CA_CERTS makes every Node start read a CA bundle (~50 ms here);
# CNI runtimes do not set it, so neither does the benchmark. NODE_OPTIONS likewise.
unset NODE_EXTRA_CA_CERTS NODE_OPTIONS

work=$(mktemp -d /tmp/weft-bench-startup.XXXXXX)
agent_pid=
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
  rm -rf "$work" "/sys/fs/bpf/weft-bench-startup-$$"
}
trap cleanup EXIT
for variant in codecache plain snapshot; do
  node apps/cni-plugin/bundle.mjs --out "$work/$variant" --sea-variant "$variant" >/dev/null
done
node apps/cni-plugin/bundle.mjs --out "$work/single" --single-file >/dev/null
mkdir -p "$work/node"
cp -r "$work/codecache/weft.cjs" "$work/codecache/chunks" "$work/codecache/native" "$work/node/"
ln -s weft.cjs "$work/node/$PROGRAM"

export CNI_COMMAND=VERSION CNI_PATH=/usr/lib/cni
names=("host-local (Go reference)" "sea:codecache $PROGRAM" "sea:codecache 1-file $PROGRAM" "sea:plain $PROGRAM"
  "sea:snapshot $PROGRAM" "node bundle $PROGRAM" "node -e 0 (bare Node)")
cmds=("$REFERENCE" "$work/codecache/$PROGRAM" "$work/single/$PROGRAM" "$work/plain/$PROGRAM" "$work/snapshot/$PROGRAM"
  "node $work/node/$PROGRAM" "node -e 0")
if [ "$PROGRAM" = weft-cni ] && [ "$(id -u)" = 0 ]; then
  "$work/codecache/weft-agent" --socket "$work/agent.sock" --state-dir "$work/agent" --queue-dir "$work/agent/queue" \
    --pin-root "/sys/fs/bpf/weft-bench-startup-$$" --node-name bench --log-level error --gc-interval 0 &
  agent_pid=$!
  for _ in $(seq 100); do [ -S "$work/agent-cni.sock" ] && break; sleep 0.1; done
  names+=("shim -> weft-agent $PROGRAM")
  cmds+=("env WEFT_CNI_SOCKET=$work/agent-cni.sock $work/codecache/$PROGRAM")
fi
args=()
expected=$("${cmds[1]}" </dev/null)
for i in "${!names[@]}"; do
  args+=(--command-name "${names[$i]}" "${cmds[$i]}")
  # A variant that fails fast would look fast: every weft variant must answer like the default build.
  if [ "$i" -gt 0 ] && [ "$i" -ne 6 ]; then
    got=$(${cmds[$i]} </dev/null) || { echo "bench-startup: ${names[$i]} failed: $got" >&2; exit 1; }
    [ "$got" = "$expected" ] || { echo "bench-startup: ${names[$i]} answered '$got', not '$expected'" >&2; exit 1; }
  fi
done
hyperfine -N --warmup 5 --runs "$RUNS" --style none --export-json "$work/result.json" "${args[@]}" \
  >/dev/null 2>"$work/hyperfine.err" || { cat "$work/hyperfine.err" >&2; exit 1; }
grep -q outliers "$work/hyperfine.err" && echo "(hyperfine saw outliers: the machine was busy; compare the min column)"

echo "CNI_COMMAND=VERSION start-up, $RUNS runs each (hyperfine -N; NODE_EXTRA_CA_CERTS unset), $(node --version), $(nproc) cores"
jq -r '
  (.results[0].mean) as $ref
  | ["command", "mean ms", "± ms", "min ms", "x reference"],
    (.results[] | [.command, (.mean*1000*100|round/100), (.stddev*1000*100|round/100), (.min*1000*100|round/100), (.mean/$ref*10|round/10)])
  | @tsv' "$work/result.json" | column -t -s $'\t'
echo
size() { stat -c %s "$1" | awk '{ printf "%.1f MiB", $1/1048576 }'; }
kib() { du -sk "$@" | awk '{ s += $1 } END { printf "%d KiB", s }'; }
echo "sizes: sea:codecache $(size "$work/codecache/weft"), sea:snapshot $(size "$work/snapshot/weft"), reference $(size "$REFERENCE");" \
  "weft.cjs $(kib "$work/codecache/weft.cjs") + chunks $(kib "$work/codecache/chunks") (1-file: $(kib "$work/single/weft.cjs"))"
