#!/usr/bin/env bash
# Boots Debian's distribution kernel under qemu (software emulation) with the host's / as a
# read-only 9p lower layer of a tmpfs overlay, and runs a command inside it. For what this host
# kernel lacks (ipvlan, sctp, dummy, ...): the code under test is the same tree at the same path,
# only the kernel differs. See scripts/vm/README.md.
#
#   scripts/vm/run-in-vm.sh 'node_modules/.bin/vitest run libs/netlink/src/rtnl.privileged.test.ts \
#     --pool=forks --poolOptions.forks.singleFork --hookTimeout=600000 --testTimeout=300000'
#
# The command runs under bash in the caller's working directory, as root, with WEFT_IN_VM=1.
# Its stdout and stderr come back on this script's stdout and stderr (streamed), its exit code is
# this script's. The runner's own failures:
#   3    qemu, the kernel image, busybox-static or cpio missing (nothing was started)
#   4    the guest did not run the command to the end (boot failure, crash, guest out of memory)
#   124  the timeout (WEFT_VM_TIMEOUT seconds) expired
# The console log's path is printed on every failure; the run's state dir is then kept.
#
# Environment: WEFT_VM_TIMEOUT (s, default 1800), WEFT_VM_MEM (MiB, default 4096), WEFT_VM_SMP
# (default 2), WEFT_VM_KERNEL (a version in /lib/modules; default: the newest *-amd64 with a
# /boot/vmlinuz), WEFT_VM_CACHE (default /var/tmp/weft-vm), WEFT_VM_KEEP=1 (keep the run dir),
# WEFT_VM_QUIET=1 (no timing line), WEFT_VM_ENV (more variable names to pass in; CI, TERM,
# NO_COLOR, FORCE_COLOR, NODE_OPTIONS, PATH and WEFT_* except WEFT_VM_* always are),
# WEFT_VM_MODULES (more modules to load in the guest), WEFT_VM_APPEND (more kernel arguments,
# e.g. "loglevel=7" to see the guest kernel's messages in the console log), WEFT_VM_CPU (qemu -cpu,
# default max), WEFT_VM_9P_CACHE (the root's 9p cache mode, default loose).
set -euo pipefail
trap 'echo "run-in-vm: internal error at line $LINENO (exit $?)" >&2' ERR

check_only=
case "${1:-}" in
  "" | -h | --help)
    echo "usage: run-in-vm.sh 'COMMAND'   run COMMAND (bash) in the test VM" >&2
    echo "       run-in-vm.sh --check     exit 0 if the VM can run here, else say why and exit 3" >&2
    echo "       (see scripts/vm/README.md)" >&2
    exit 2
    ;;
  --check) check_only=1 ;;
esac
cmd="$*"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || (cd "$here/../.." && pwd -P))
cache=${WEFT_VM_CACHE:-/var/tmp/weft-vm}
timeout_s=${WEFT_VM_TIMEOUT:-1800}
mem=${WEFT_VM_MEM:-4096}
smp=${WEFT_VM_SMP:-2}
msize=512000

missing() {
  echo "run-in-vm: cannot run the VM: $*" >&2
  echo "run-in-vm: install with: apt-get install qemu-system-x86 linux-image-amd64 busybox-static cpio (or scripts/setup.sh)" >&2
  exit 3
}

# ---- prerequisites -------------------------------------------------------------------------------
qemu=$(command -v qemu-system-x86_64 2>/dev/null) || missing "qemu-system-x86_64 is not installed"
if [ -n "${WEFT_VM_KERNEL:-}" ]; then
  kver=$WEFT_VM_KERNEL
else
  kver=$(for v in /boot/vmlinuz-*-amd64; do
    v=${v#/boot/vmlinuz-}
    [ -d "/lib/modules/$v/kernel" ] && echo "$v"
  done 2>/dev/null | sort -V | tail -n1)
fi
[ -n "$kver" ] || missing "no Debian kernel (/boot/vmlinuz-*-amd64 with its /lib/modules)"
kernel=/boot/vmlinuz-$kver
[ -f "$kernel" ] || missing "$kernel does not exist"
[ -r "$kernel" ] || missing "$kernel is not readable (run as root)"
[ -f "/lib/modules/$kver/modules.dep" ] || missing "/lib/modules/$kver/modules.dep is missing"
busybox=
for b in /usr/bin/busybox /bin/busybox; do
  if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then busybox=$b && break; fi # static only
done
[ -n "$busybox" ] || missing "no static busybox (busybox-static)"
command -v cpio >/dev/null || missing "cpio is not installed"
case "$cache" in
  /*) ;;
  *) missing "WEFT_VM_CACHE must be an absolute path" ;;
esac
if [[ ! "$cache" =~ ^[A-Za-z0-9_./-]+$ ]]; then
  missing "WEFT_VM_CACHE ($cache) may only hold [A-Za-z0-9_./-] (it goes on the kernel command line)"
fi
if [ -n "$check_only" ]; then
  echo "run-in-vm: ready: kernel $kver ($kernel), $qemu, cache $cache"
  exit 0
fi
mkdir -p "$cache/runs" || missing "cannot create $cache/runs"

# ---- the initramfs: busybox + the 9p/virtio/overlay modules; cached per kernel build ------------
# Rebuilt when the kernel image, its modules or the init script change (the key covers them).
mods=(virtio_pci 9pnet_virtio 9p overlay)
key=$( {
  echo "$kver"
  stat -c '%s %Y' "$kernel" "/lib/modules/$kver/modules.dep" "$busybox"
  cat "$here/initramfs-init.sh" "$here/run-in-vm.sh"
  echo "${mods[*]}"
} | sha256sum | cut -c1-16)
initrd=$cache/initrd-$kver-$key.cpio
if [ ! -s "$initrd" ]; then
  exec 9>"$cache/initrd.lock"
  flock 9
  if [ ! -s "$initrd" ]; then
    echo "run-in-vm: building the initramfs for $kver" >&2
    tree=$(mktemp -d "$cache/initrd-tree.XXXXXX")
    mkdir -p "$tree/bin" "$tree/modules"
    cp "$busybox" "$tree/bin/busybox"
    cp "$here/initramfs-init.sh" "$tree/init"
    chmod 0755 "$tree/init" "$tree/bin/busybox"
    # modprobe prints the insmod order, dependencies first; "builtin" lines need nothing.
    modprobe -S "$kver" -a --show-depends "${mods[@]}" | awk '$1 == "insmod" {print $2}' | awk '!seen[$0]++' |
      while read -r ko; do
        cp "$ko" "$tree/modules/"
        basename "$ko" >>"$tree/modules/order"
      done
    [ -s "$tree/modules/order" ] || { rm -rf "$tree"; missing "modprobe found none of ${mods[*]} for $kver"; }
    (cd "$tree" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$initrd.tmp.$$"
    mv "$initrd.tmp.$$" "$initrd"
    rm -rf "$tree"
    # Initramfs images of older builds of this kernel are stale now.
    find "$cache" -maxdepth 1 -name "initrd-$kver-*.cpio" ! -name "$(basename "$initrd")" -delete
  fi
  exec 9>&-
fi

# ---- the run's own state dir (concurrent runs do not share anything but the initramfs) ----------
# Kept run dirs (failures, WEFT_VM_KEEP) go after a day, or when more than 30 are there.
find "$cache/runs" -mindepth 1 -maxdepth 1 -name 'run.*' -mmin +1440 -exec rm -rf {} + 2>/dev/null || true
# shellcheck disable=SC2012
ls -dt "$cache/runs"/run.* 2>/dev/null | tail -n +31 | xargs -r rm -rf || true
run=$(mktemp -d "$cache/runs/run.XXXXXX")
chmod 0755 "$run"
printf '%s\n' "$cmd" >"$run/command"
cp "$here/guest-init.sh" "$run/guest-init.sh"
chmod 0755 "$run/guest-init.sh"
{
  printf 'export WEFT_IN_VM=1\n'
  printf 'export WEFT_VM_REPO=%q\n' "$repo"
  printf 'export WEFT_VM_CWD=%q\n' "$(pwd -P)"
  printf 'export NX_DAEMON=false NX_NO_CLOUD=true\n'
  for v in CI TERM NO_COLOR FORCE_COLOR NODE_OPTIONS PATH ${WEFT_VM_ENV:-} $(compgen -e | grep '^WEFT_' | grep -v '^WEFT_VM_' || true); do
    if [ -n "${!v+x}" ]; then printf 'export %s=%q\n' "$v" "${!v}"; fi
  done
  # shellcheck disable=SC2016 # expanded in the guest
  printf 'export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"\n'
} >"$run/env"
: >"$run/stdout"
: >"$run/stderr"

qpid=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
  local status=$?
  if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then kill "$qpid" 2>/dev/null || true; fi
  if [ "$status" -eq 0 ] && [ -z "${WEFT_VM_KEEP:-}" ]; then rm -rf "$run"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

append="console=ttyS0 loglevel=4 panic=-1 mitigations=off rdinit=/init"
append+=" weft.init=$run/guest-init.sh"
append+=" weft.9p=trans=virtio,version=9p2000.L,msize=$msize,cache=${WEFT_VM_9P_CACHE:-loose}"
append+=" ${WEFT_VM_APPEND:-}"

t0=$(date +%s.%N)
# -cpu max with TCG: KVM exists here but its guests hang at boot (see README).
timeout -k 10 "$timeout_s" "$qemu" \
  -name "weft-vm,process=weft-vm-$(basename "$run")" \
  -nodefaults -no-user-config -display none -no-reboot \
  -machine q35,accel=tcg -cpu "${WEFT_VM_CPU:-max}" -m "$mem" -smp "$smp" \
  -kernel "$kernel" -initrd "$initrd" -append "$append" \
  -serial "file:$run/console.log" \
  -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
  -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
  -fsdev "local,id=weftrun,path=$run,security_model=none" \
  -device virtio-9p-pci,fsdev=weftrun,mount_tag=weftrun \
  -device virtio-rng-pci \
  </dev/null >"$run/qemu.log" 2>&1 &
qpid=$!

# Stream the command's output while it runs.
tail -n +1 -s 0.3 -f --pid="$qpid" "$run/stdout" &
tail_out=$!
tail -n +1 -s 0.3 -f --pid="$qpid" "$run/stderr" >&2 &
tail_err=$!

qrc=0
wait "$qpid" || qrc=$?
qpid=
wait "$tail_out" "$tail_err" 2>/dev/null || true
t1=$(date +%s.%N)

where() {
  echo "run-in-vm: console log: $run/console.log (qemu: $run/qemu.log, command output: $run/stdout, $run/stderr)" >&2
  # What went wrong first (panic, oops, OOM, the guest's own FATAL), then the end of the log.
  tr -d '\r' <"$run/console.log" 2>/dev/null |
    grep -a -m 8 -E 'Kernel panic|BUG:|Oops|Out of memory|FATAL|weft-vm: end' | sed 's/^/run-in-vm:   ! /' >&2 || true
  tail -n 15 "$run/console.log" 2>/dev/null | tr -d '\r' | sed 's/^/run-in-vm:   | /' >&2
  [ ! -s "$run/qemu.log" ] || sed 's/^/run-in-vm: qemu: /' "$run/qemu.log" >&2
}

if [ ! -s "$run/rc" ]; then
  if [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then
    echo "run-in-vm: timed out after ${timeout_s}s (WEFT_VM_TIMEOUT)" >&2
    where
    exit 124
  fi
  echo "run-in-vm: the guest did not run the command to the end (qemu exit $qrc)" >&2
  [ ! -s "$run/guest-error" ] || echo "run-in-vm: guest: $(cat "$run/guest-error")" >&2
  where
  exit 4
fi
rc=$(cat "$run/rc")
if [ -z "${WEFT_VM_QUIET:-}" ]; then
  awk -v t0="$t0" -v t1="$t1" -v k="$kver" -v rc="$rc" -v s="$(cat "$run/t-start" 2>/dev/null || echo 0)" \
    -v e="$(cat "$run/t-end" 2>/dev/null || echo 0)" 'BEGIN {
      printf "run-in-vm: %s: boot to command %.1fs, command %.1fs, total %.1fs, exit %s\n", k, s, e - s, t1 - t0, rc
    }' >&2
fi
if [ "$rc" -ne 0 ]; then echo "run-in-vm: console log: $run/console.log" >&2; fi
exit "$rc"
