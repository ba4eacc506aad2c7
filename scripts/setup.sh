#!/usr/bin/env bash
# Installs everything weft needs on a fresh Debian bookworm machine (as root). Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool iproute2 iputils-ping iperf3 sockperf hyperfine
  containernetworking-plugins golang-go golang-github-appc-cni-dev golang-github-containernetworking-plugins-dev
  podman runc busybox-static jq conntrack iptables nftables make g++ python3 kmod strace curl
  qemu-system-x86 linux-image-amd64 initramfs-tools cpio) # the last line: the test VM (scripts/vm)

missing=()
for p in "${DEBS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# npm ci when the lockfile and node_modules disagree; otherwise nothing to do.
if [ ! -d node_modules/.bin ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi

# The BPF filesystem must be mounted for pinning (it usually is).
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || true

echo "setup: building"
NX_DAEMON=false NX_NO_CLOUD=true npx nx run-many -t build --outputStyle=static --skipNxCache=false >/tmp/weft-build.log 2>&1 ||
  { cat /tmp/weft-build.log; exit 1; }
