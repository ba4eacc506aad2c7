#!/usr/bin/env bash
# ADD latency of weft-host-local next to the reference host-local, same machine, same run.
# Each timed ADD allocates a fresh address: --prepare removes the previous reservation.
# Usage: apps/cni-plugin/src/host-local/bench-add.sh [runs]   (after bundle.mjs has built dist/bin)
set -euo pipefail
cd "$(dirname "$0")/../../../.."
runs="${1:-50}"
weft="$PWD/dist/bin/weft-host-local"
reference=/usr/lib/cni/host-local
for f in "$weft" "$reference"; do [ -x "$f" ] || { echo "missing $f" >&2; exit 1; }; done
command -v hyperfine >/dev/null || { echo "needs hyperfine" >&2; exit 1; }

dir="$(mktemp -d /tmp/wh-bench-XXXXXX)"
trap 'rm -rf "$dir"' EXIT
for name in weft reference; do
  printf '{"cniVersion":"1.0.0","name":"whbench-%s","type":"host-local","ipam":{"type":"host-local","dataDir":"%s","ranges":[[{"subnet":"10.98.0.0/16"}]]}}' \
    "$name" "$dir" >"$dir/$name.json"
done

# CNI runtimes do not set NODE_EXTRA_CA_CERTS; it costs node ~50 ms at start-up.
unset NODE_EXTRA_CA_CERTS
export CNI_COMMAND=ADD CNI_CONTAINERID=wh-bench CNI_NETNS=/proc/self/ns/net CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni

hyperfine --warmup 5 --runs "$runs" --export-markdown "$dir/table.md" \
  --prepare "rm -f $dir/whbench-weft/10.*" -n weft-host-local "$weft < $dir/weft.json > /dev/null" \
  --prepare "rm -f $dir/whbench-reference/10.*" -n host-local "$reference < $dir/reference.json > /dev/null"
echo
cat "$dir/table.md"
