#!/usr/bin/env bash
# Boots Debian's distribution kernel under qemu with the host's / shared read-only over 9p and runs
# a command inside it. Used for what this host kernel lacks (ipvlan, sctp, dummy): the code under
# test is the same tree, only the kernel differs.
#
#   scripts/vm/run-in-vm.sh 'cd /work/main && npx vitest run apps/cni-plugin/src/modes/ipvlan'
#
# Output of the command comes back on the serial console between markers; the exit code is the
# command's. Writes go to tmpfs overlays inside the VM: the host is never modified.
set -euo pipefail
cmd=${1:?usage: run-in-vm.sh COMMAND}
here=$(cd "$(dirname "$0")" && pwd)
state=/var/tmp/weft-vm
mkdir -p "$state"

kver=$(ls /lib/modules | grep -E 'amd64$' | sort -V | tail -n1 || true)
if [ -z "$kver" ] || [ ! -f "/boot/vmlinuz-$kver" ]; then
  echo "run-in-vm: no Debian kernel: apt-get install qemu-system-x86 linux-image-amd64 initramfs-tools" >&2
  exit 3
fi
command -v qemu-system-x86_64 >/dev/null || { echo "run-in-vm: qemu-system-x86_64 missing" >&2; exit 3; }

# An initramfs that can mount a 9p root (Debian's default one lacks the 9p modules).
initrd="$state/initrd-$kver.img"
if [ ! -s "$initrd" ]; then
  conf="$state/initramfs-tools"
  rm -rf "$conf" && cp -a /etc/initramfs-tools "$conf"
  printf '9p\n9pnet\n9pnet_virtio\noverlay\n' >>"$conf/modules"
  mkinitramfs -d "$conf" -o "$initrd.tmp" "$kver" 2>/dev/null
  mv "$initrd.tmp" "$initrd"
fi

# The command travels in a file the guest reads over 9p.
printf '%s\n' "$cmd" >"$state/command.sh"
cp "$here/guest-init.sh" "$state/guest-init.sh"
chmod +x "$state/guest-init.sh"

log="$state/console.log"
timeout "${WEFT_VM_TIMEOUT:-900}" qemu-system-x86_64 \
  -machine accel=tcg -cpu max -m "${WEFT_VM_MEM:-3072}" -smp 2 -nographic -no-reboot \
  -kernel "/boot/vmlinuz-$kver" -initrd "$initrd" \
  -append "root=hostroot rootfstype=9p rootflags=trans=virtio,version=9p2000.L,msize=512000 ro init=$state/guest-init.sh console=ttyS0 quiet loglevel=3 panic=-1" \
  -fsdev local,id=root,path=/,security_model=none,readonly=on \
  -device virtio-9p-pci,fsdev=root,mount_tag=hostroot \
  -nic none </dev/null >"$log" 2>&1 || true

# Print what the command printed, and return its exit code.
sed -n '/^=== weft-vm: begin ===/,/^=== weft-vm: end/p' "$log" | sed '1d;$d' | tr -d '\r'
rc=$(grep -a -o 'weft-vm: end rc=[0-9]*' "$log" | tail -n1 | sed 's/.*rc=//')
if [ -z "$rc" ]; then
  echo "run-in-vm: the guest did not finish; console log: $log" >&2
  tail -n 30 "$log" >&2
  exit 4
fi
exit "$rc"
