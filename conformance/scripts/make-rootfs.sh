#!/usr/bin/env bash
# Makes the base image for conformance/Containerfile without any registry: a Debian
# bookworm rootfs built by mmdebstrap from Debian's own mirror, with every package the
# suite needs already inside, imported into podman's local store.
#   usage: make-rootfs.sh [IMAGE_NAME]   (default localhost/weft-conformance-base)
# Needs: mmdebstrap (apt-get install mmdebstrap), podman, root. PODMAN="podman --root DIR"
# keeps the image out of the default store.
set -euo pipefail
image=${1:-localhost/weft-conformance-base}
tar=$(mktemp /tmp/wk-rootfs.XXXXXX.tar)
trap 'rm -f "$tar"' EXIT
packages=(
  ca-certificates iproute2 iptables iputils-ping jq nodejs
  golang-go golang-github-appc-cni-dev golang-github-containernetworking-plugins-dev
  containernetworking-plugins podman runc conmon busybox-static
)
mmdebstrap --variant=apt --include="$(IFS=,; echo "${packages[*]}")" bookworm "$tar"
${PODMAN:-podman} import --change 'CMD ["/bin/bash"]' "$tar" "$image"
echo "imported $image"
