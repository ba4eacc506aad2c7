#!/bin/sh
# PID 1 of the test VM: writable tmpfs where tests write, the modules the host kernel lacks, then the command.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
# Writable overlays on the read-only 9p root where weft and its tests write.
for d in /var/lib /var/tmp /work /root /etc; do
  n=$(echo "$d" | tr / _)
  mkdir -p "/run/ovl/$n/u" "/run/ovl/$n/w"
  mount -t overlay overlay -o "lowerdir=$d,upperdir=/run/ovl/$n/u,workdir=/run/ovl/$n/w" "$d" 2>/dev/null ||
    mount -t tmpfs tmpfs "$d"
done
mkdir -p /run/netns /var/run
ip link set lo up
for m in ipvlan macvlan veth sctp dummy sch_ingress cls_bpf act_bpf; do modprobe "$m" 2>/dev/null; done
echo "=== weft-vm: begin ==="
echo "kernel $(uname -r); modules: $(lsmod | awk 'NR>1{print $1}' | grep -E '^(ipvlan|sctp|dummy)$' | tr '\n' ' ')"
sh -c "$(cat /var/tmp/weft-vm/command.sh)" 2>&1
rc=$?
echo "=== weft-vm: end rc=$rc ==="
sync
echo o >/proc/sysrq-trigger
sleep 5
