#!/usr/bin/env bash
# Builds the weft native addon against the machine's Node headers (offline: no header download).
set -euo pipefail
cd "$(dirname "$0")/.."
nodedir_args=()
[ -f /usr/include/node/node_api.h ] && nodedir_args=(--nodedir=/usr)
npx node-gyp rebuild --directory libs/native "${nodedir_args[@]}" >/dev/null
