#!/usr/bin/env bash
# weft's main job, shown end to end (the README's demo command, `npm run demo`):
#   set-up -> install weft into a demo dir -> start weft-agent on a manifests dir -> three pods in
#   network namespaces via weft-cni -> traffic -> a NetworkPolicy -> traffic again, traced and
#   observed -> the agent killed: policy still enforced -> everything torn down.
# Root, Debian bookworm. Safe to run twice: every name it makes starts with "wdemo" and is removed
# at the end (and first, should a previous run have been interrupted).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
[ "$(id -u)" = 0 ] || { echo "demo: run as root (it makes network namespaces and attaches BPF programs)" >&2; exit 1; }
bash scripts/setup.sh

DEMO=/tmp/wdemo
PIN=/sys/fs/bpf/wdemo
SOCK=$DEMO/agent.sock
PODS=(shop/frontend shop/backend guests/visitor)
unset NODE_EXTRA_CA_CERTS NODE_OPTIONS # as a CNI runtime runs plugins

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
ns_of() { echo "wdemo-${1#*/}"; }
cid_of() { echo "wdemo-${1/\//-}"; }

cleanup() {
  set +e
  if [ -x "$DEMO/bin/weft-cni" ] && [ -f "$DEMO/net.d/weftdemo.conf" ]; then
    for p in "${PODS[@]}"; do cni DEL "$p" >/dev/null 2>&1; done
  fi
  [ -f "$DEMO/agent.pid" ] && kill "$(cat "$DEMO/agent.pid")" 2>/dev/null && sleep 0.5
  for p in "${PODS[@]}"; do
    ip netns pids "$(ns_of "$p")" 2>/dev/null | xargs -r kill 2>/dev/null
    ip netns del "$(ns_of "$p")" 2>/dev/null
  done
  rm -rf "$PIN" "$DEMO"
}

cni() { # cni COMMAND NS/POD: weft-cni exactly as a runtime invokes it
  local p=$2
  CNI_COMMAND=$1 CNI_CONTAINERID=$(cid_of "$p") CNI_NETNS=/var/run/netns/$(ns_of "$p") CNI_IFNAME=eth0 \
    CNI_PATH=$DEMO/bin CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=${p%/*};K8S_POD_NAME=${p#*/}" \
    "$DEMO/bin/weft-cni" <"$DEMO/net.d/weftdemo.conf"
}

weft() { "$DEMO/bin/weft" "$@" --socket "$SOCK"; }

ip_of() { jq -r '.ips[0].address | split("/")[0]' "$DEMO/$(ns_of "$1").json"; }

probe() { # probe FROM TO PORT: an HTTP GET from inside FROM's namespace
  local from=$1 to=$2 port=$3 out
  if out=$(ip netns exec "$(ns_of "$from")" curl -sS -m 2 "http://$(ip_of "$to"):$port/" 2>&1); then
    printf '  %-16s -> %-13s :%-5s \033[32mallowed\033[0m  (%s)\n' "$from" "$to" "$port" "$(head -c 40 <<<"$out")"
  else
    printf '  %-16s -> %-13s :%-5s \033[31mblocked\033[0m\n' "$from" "$to" "$port"
  fi
}

cleanup
trap cleanup EXIT
mkdir -p "$DEMO/manifests" "$DEMO/www"

step "Install weft into $DEMO (a real node uses the defaults: /opt/cni/bin and /etc/cni/net.d)"
"$REPO/dist/bin/weft" install --bin-dir "$DEMO/bin" --conf-dir "$DEMO/net.d"
ls -l "$DEMO/bin" | sed 's/^/  /'
cat >"$DEMO/net.d/weftdemo.conf" <<EOF
{ "cniVersion": "1.1.0", "name": "weftdemo", "type": "weft-cni", "mode": "veth", "mtu": 1500,
  "agentSocket": "$SOCK", "stateDir": "$DEMO/state", "pinRoot": "$PIN",
  "ipam": { "type": "weft-host-local", "ranges": [[{ "subnet": "10.90.0.0/24" }]], "dataDir": "$DEMO/ipam" } }
EOF
echo "  network config $DEMO/net.d/weftdemo.conf:"
jq -c . "$DEMO/net.d/weftdemo.conf" | sed 's/^/  /'

step "Pods as the API server would list them (a manifests dir stands in for Kubernetes)"
cat >"$DEMO/manifests/pods.yaml" <<'EOF'
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { team: shop } }
---
apiVersion: v1
kind: Namespace
metadata: { name: guests }
---
apiVersion: v1
kind: Pod
metadata: { name: frontend, namespace: shop, labels: { app: frontend } }
spec: { nodeName: wdemo-node, containers: [{ name: web, image: busybox }] }
---
apiVersion: v1
kind: Pod
metadata: { name: backend, namespace: shop, labels: { app: backend } }
spec:
  nodeName: wdemo-node
  containers: [{ name: api, image: busybox, ports: [{ name: http, containerPort: 80 }, { name: admin, containerPort: 8080 }] }]
---
apiVersion: v1
kind: Pod
metadata: { name: visitor, namespace: guests, labels: { app: visitor } }
spec: { nodeName: wdemo-node, containers: [{ name: curl, image: busybox }] }
EOF
grep -E '^metadata' "$DEMO/manifests/pods.yaml" | sed 's/^/  /'

step "Start weft-agent (--manifests $DEMO/manifests)"
"$DEMO/bin/weft-agent" --manifests "$DEMO/manifests" --node-name wdemo-node --socket "$SOCK" \
  --state-dir "$DEMO/state" --queue-dir "$DEMO/state/queue" --pin-root "$PIN" --log-level warn \
  2>"$DEMO/agent.log" &
echo $! >"$DEMO/agent.pid"
for _ in $(seq 100); do [ -S "$SOCK" ] && weft status >/dev/null 2>&1 && break; sleep 0.1; done
weft status | sed 's/^/  /'

step "Create three pods: netns + weft-cni ADD (CNI_COMMAND=ADD ... weft-cni < conf)"
for p in "${PODS[@]}"; do
  ip netns add "$(ns_of "$p")"
  ip -n "$(ns_of "$p")" link set lo up
  cni ADD "$p" >"$DEMO/$(ns_of "$p").json"
  printf '  %-16s eth0 %-16s host side %s\n' "$p" "$(jq -r '.ips[0].address' "$DEMO/$(ns_of "$p").json")" \
    "$(jq -r '.interfaces[0].name' "$DEMO/$(ns_of "$p").json")"
done
echo "  ADD result of shop/backend:"
jq -c . "$DEMO/$(ns_of shop/backend).json" | sed 's/^/  /'
echo 'hello from shop/backend' >"$DEMO/www/index.html"
for port in 80 8080; do
  ip netns exec "$(ns_of shop/backend)" busybox httpd -p "$port" -h "$DEMO/www"
done
weft endpoint list | sed 's/^/  /'

step "Traffic with no policy: everything is allowed"
probe shop/frontend shop/backend 80
probe shop/frontend shop/backend 8080
probe guests/visitor shop/backend 80
ip netns exec "$(ns_of guests/visitor)" ping -c1 -W2 "$(ip_of shop/frontend)" >/dev/null && echo "  guests/visitor pings shop/frontend"

step "Apply a NetworkPolicy: shop/backend takes port 'http' from app=frontend only"
cat >"$DEMO/manifests/policy.yaml" <<'EOF'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: backend-from-frontend, namespace: shop }
spec:
  podSelector: { matchLabels: { app: backend } }
  policyTypes: [Ingress]
  ingress:
    - from: [{ podSelector: { matchLabels: { app: frontend } } }]
      ports: [{ protocol: TCP, port: http }]
EOF
sed 's/^/  /' "$DEMO/manifests/policy.yaml"
for _ in $(seq 50); do weft policy get -o json | jq -e 'length > 0' >/dev/null 2>&1 && break; sleep 0.2; done
sleep 0.5
weft policy get | sed 's/^/  /'

step "Traffic with the policy"
probe shop/frontend shop/backend 80
probe shop/frontend shop/backend 8080
probe guests/visitor shop/backend 80
ip netns exec "$(ns_of guests/visitor)" ping -c1 -W2 "$(ip_of shop/frontend)" >/dev/null && echo "  guests/visitor still pings shop/frontend (not selected by the policy)"

step "Why: weft policy trace"
weft policy trace --from guests/visitor --to shop/backend --port 80/TCP | sed 's/^/  /'
weft policy trace --from shop/frontend --to shop/backend --port 80/TCP | sed 's/^/  /'

step "The policy map of shop/backend as the datapath holds it (weft bpf policy get)"
weft bpf policy get shop/backend | sed 's/^/  /'

step "Drops seen by the datapath (weft observe --no-follow --type drop)"
weft observe --no-follow --type drop | tail -n 5 | sed 's/^/  /'

step "Kill the agent: the pinned programs and maps keep enforcing"
kill "$(cat "$DEMO/agent.pid")"; rm -f "$DEMO/agent.pid"; sleep 0.5
weft status 2>&1 | sed 's/^/  /' || true
probe shop/frontend shop/backend 80
probe guests/visitor shop/backend 80

step "Tear down: weft-cni DEL for each pod, netns removed"
for p in "${PODS[@]}"; do cni DEL "$p" && echo "  DEL $p: ok"; done
cleanup
trap - EXIT
ip -o link show | grep -c ' lxc' >/dev/null || true
echo "  nothing left under $DEMO or $PIN"
echo
echo "demo finished"
