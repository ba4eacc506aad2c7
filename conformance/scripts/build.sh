#!/usr/bin/env bash
# Builds the Go harnesses with Debian's Go and Debian's libcni/plugins sources in GOPATH
# mode: nothing is downloaded. Our packages live in conformance/go and are made visible
# as import path "weftconformance" through a symlink in a scratch GOPATH that comes first;
# /usr/share/gocode (golang-github-appc-cni-dev, golang-github-containernetworking-plugins-dev)
# comes second.
#   usage: build.sh OUT_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:?usage: build.sh OUT_DIR}"
mkdir -p "$out"
out=$(cd "$out" && pwd) # go build runs from the scratch GOPATH
gopath="$(mktemp -d /tmp/wk-gopath.XXXXXX)"
trap 'rm -rf "$gopath"' EXIT
mkdir -p "$gopath/src"
ln -s "$here/go" "$gopath/src/weftconformance"
export GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOFLAGS= CGO_ENABLED=0
cd "$gopath/src/weftconformance"
for cmd in libcni-harness spec11-harness weft-cnitool; do
  go build -o "$out/$cmd" "./cmd/$cmd"
done
