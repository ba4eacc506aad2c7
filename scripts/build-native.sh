#!/usr/bin/env bash
# Builds the weft native addon against the machine's Node headers (offline: no header download).
set -euo pipefail
cd "$(dirname "$0")/.."
nodedir_args=()
[ -f /usr/include/node/node_api.h ] && nodedir_args=(--nodedir=/usr)
npx node-gyp rebuild --directory libs/native "${nodedir_args[@]}" >/dev/null 2>&1 || npx node-gyp rebuild --directory libs/native "${nodedir_args[@]}" 2>&1 | grep -E "error|Error" >&2; test -f libs/native/build/Release/weft_native.node
