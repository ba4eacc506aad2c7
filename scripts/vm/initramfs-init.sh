#!/bin/busybox sh
# /init of the weft test VM's initramfs (built by run-in-vm.sh from busybox-static and the host's
# 9p/virtio/overlay modules). It mounts the host's / (9p, read-only) as the lower layer of an
# overlay whose upper layer is a tmpfs, and switches to it: everything in the guest is writable,
# nothing reaches the host. Then it runs weft.init= (guest-init.sh) as PID 1.
/bin/busybox mkdir -p /bin /proc /sys /dev /lower /rw /newroot
/bin/busybox --install -s /bin
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

fail() {
  echo "weft-initramfs: FATAL: $*" >/dev/console
  echo "=== weft-vm: end rc=126 (initramfs failed) ===" >/dev/console
  sleep 1
  poweroff -f
}

while read -r mod; do
  insmod "/modules/$mod" 2>/dev/null || grep -q "^${mod%.ko}\b" /proc/modules || echo "weft-initramfs: insmod $mod failed" >/dev/console
done </modules/order

init=
opts=trans=virtio,version=9p2000.L
# shellcheck disable=SC2013 # words, on purpose
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    weft.init=*) init=${arg#weft.init=} ;;
    weft.9p=*) opts=${arg#weft.9p=} ;;
  esac
done
[ -n "$init" ] || fail "no weft.init= on the kernel command line"

# The virtio-9p device may bind a moment after its driver loads.
n=0
until mount -t 9p -o "ro,$opts" hostroot /lower 2>/dev/null; do
  n=$((n + 1))
  if [ $n -ge 100 ]; then
    err=$(mount -t 9p -o "ro,$opts" hostroot /lower 2>&1)
    fail "cannot mount the host root over 9p (options $opts): $err; modules: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"
  fi
  sleep 0.1
done

# tmpfs upper layer: the guest may write anywhere; the writes live and die in guest memory.
mount -t tmpfs -o mode=0755 weftrw /rw || fail "tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay weftroot -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot ||
  fail "overlay on the 9p root"

[ -x "/newroot$init" ] || fail "$init is not executable inside the guest"
# The guest's own /proc, /sys and /dev, mounted before anything runs from the new root: the lower
# layer's /proc etc. are the host's (served by qemu), never to be read as the guest's.
for d in proc sys dev; do
  mount --move "/$d" "/newroot/$d" || fail "cannot move /$d into the new root"
done
exec switch_root /newroot "$init"
