#!/bin/bash
# PID 1 of the weft test VM, started by initramfs-init.sh on an overlay of the host's / (lower: 9p,
# read-only; upper: tmpfs). Mounts what weft and its tests expect, loads the modules the host kernel
# lacks, runs the command from the run share (/run/weft, the host's per-run state dir, the only
# writable 9p export) and powers off. stdout, stderr and the exit code go back through the share.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
console=/dev/console
say() { echo "weft-vm: $*" >"$console"; }

poweroff_now() {
  sync
  echo o >/proc/sysrq-trigger
  sleep 10
  exit 1 # PID 1 exiting panics; with panic=-1 and -no-reboot qemu exits anyway
}

fatal() {
  say "FATAL: $*"
  if [ -d /run/weft ] && mountpoint -q /run/weft; then
    echo "$*" >/run/weft/guest-error
  fi
  echo "=== weft-vm: end rc=126 ($*) ===" >"$console"
  poweroff_now
}

# The initramfs mounted the guest's /proc, /sys and /dev. Never trust a /proc seen through 9p: it
# would be the host's (qemu's) and "is it mounted" checks would read the host's mount table.
[ "$(stat -f -c %T /proc 2>/dev/null)" = proc ] || mount -t proc proc /proc
[ "$(stat -f -c %T /sys 2>/dev/null)" = sysfs ] || mount -t sysfs sysfs /sys
[ "$(stat -f -c %T /dev 2>/dev/null)" = tmpfs ] || mount -t devtmpfs devtmpfs /dev
[ "$(stat -f -c %T /proc)" = proc ] || fatal "/proc is not the guest's procfs"
m() { mountpoint -q "${@: -1}" || mount "$@" || say "mount $* failed"; }
mkdir -p /dev/pts /dev/shm /dev/mqueue
m -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
m -t tmpfs -o mode=1777 tmpfs /dev/shm
m -t mqueue mqueue /dev/mqueue
for l in fd:/proc/self/fd stdin:/proc/self/fd/0 stdout:/proc/self/fd/1 stderr:/proc/self/fd/2 ptmx:pts/ptmx; do
  [ -e "/dev/${l%%:*}" ] || ln -sf "${l#*:}" "/dev/${l%%:*}"
done
m -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -p /run/lock /run/user /run/weft
m -t bpf -o mode=0700 bpf /sys/fs/bpf
m -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
m -t debugfs debugfs /sys/kernel/debug
m -t tracefs tracefs /sys/kernel/tracing
m -t securityfs securityfs /sys/kernel/security

# The per-run share: command, environment, and where stdout/stderr/rc go.
opts=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o "$opts" weftrun /run/weft || fatal "cannot mount the run share (9p tag weftrun)"
[ -r /run/weft/command ] || fatal "no /run/weft/command"

# Environment from the host side: WEFT_VM_REPO, WEFT_VM_CWD, passed-through variables.
# shellcheck disable=SC1091
. /run/weft/env || fatal "cannot read /run/weft/env"

# /tmp: a fresh tmpfs (fast), unless the repo or the working directory lives under the host's /tmp
# (then the overlay keeps the host's files visible, and writable in guest memory only).
tmp_is_host=
for p in "${WEFT_VM_REPO:-}" "${WEFT_VM_CWD:-}"; do
  case "$p/" in /tmp/*) tmp_is_host=1 ;; esac
done
if [ -n "$tmp_is_host" ]; then say "the repo is under /tmp: /tmp stays the host's (overlaid)"; else m -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp; fi

# `ip netns add` wants /run/netns to be a shared mount (it makes it one itself, but be explicit).
mkdir -p /run/netns
mount --bind /run/netns /run/netns && mount --make-shared /run/netns

hostname weft-vm 2>/dev/null || echo weft-vm >/proc/sys/kernel/hostname
ip link set lo up

# What this host kernel lacks, and what the datapath attaches with.
mods="ipvlan macvlan veth sctp dummy sch_ingress cls_bpf act_bpf bridge vxlan virtio_rng ${WEFT_VM_MODULES:-}"
for mod in $mods; do modprobe "$mod" 2>/dev/null || say "modprobe $mod failed"; done

ulimit -n 1048576 2>/dev/null || ulimit -n 65536
ulimit -l unlimited 2>/dev/null

cd "${WEFT_VM_CWD:-/}" 2>/dev/null || fatal "the working directory ${WEFT_VM_CWD:-} is not visible in the guest"

cut -d' ' -f1 /proc/uptime >/run/weft/t-start
say "running the command ($(uname -r), $(nproc) cpus, $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) MiB)"
echo "=== weft-vm: begin ===" >"$console"
bash -c "$(cat /run/weft/command)" </dev/null >/run/weft/stdout 2>/run/weft/stderr
rc=$?
cut -d' ' -f1 /proc/uptime >/run/weft/t-end
echo "$rc" >/run/weft/rc.tmp && mv /run/weft/rc.tmp /run/weft/rc
sync
umount /run/weft 2>/dev/null
echo "=== weft-vm: end rc=$rc ===" >"$console"
poweroff_now
