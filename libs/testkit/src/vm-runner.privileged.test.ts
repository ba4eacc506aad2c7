/**
 * Boots the test VM once (Debian's kernel under qemu, scripts/vm/run-in-vm.sh) and checks inside
 * what this host kernel cannot do: ipvlan, SCTP, dummy; then runs the ipvlan tests of netlink and
 * of the datapath there, which must PASS (not skip). Costs ~1.5-3 min of a CI run (software
 * emulation); opt out with WEFT_SKIP_VM=1. Skips, saying why, without root, qemu or the kernel.
 */
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { privileged } from './privileged';
import {
  parseVitestInVm,
  REPO_ROOT,
  runInVm,
  vitestInVmCommand,
  vmRunnerAvailable,
  type VmResult,
  type VmTest,
} from './vm-runner';

const VM_TIMEOUT_MS = 20 * 60_000;
/** The test files run inside, and the tests among them that must pass there (not skip). */
const SUITE = ['libs/netlink/src/rtnl.privileged.test.ts', 'libs/datapath/src/datapath.privileged.test.ts'];
const PATTERN = 'rtnetlink against the real kernel|IPvlan';
const MUST_PASS = [
  /rtnetlink.*creates ipvlan links in every mode/,
  /datapath.*\(clsact\).*IPvlan: attaches to a real ipvlan interface inside its netns/,
];

const token = randomBytes(4).toString('hex');
const probeFile = join(REPO_ROOT, `.weft-vm-probe-${token}`);

// Each check prints "@@name=value"; the values are checked one by one below.
const PROBES = String.raw`
echo "@@uname=$(uname -r)"
echo "@@in_vm=$WEFT_IN_VM"
echo "@@bpffs=$(stat -f -c %T /sys/fs/bpf)"
echo "@@cgroup=$(stat -f -c %T /sys/fs/cgroup)"
if ip link add wvmb0 type veth peer name wvmb0p && ip link add wvmi0 link wvmb0 type ipvlan mode l2; then
  echo "@@ipvlan=$(ip -d -o link show wvmi0 | grep -o 'ipvlan  mode [a-z0-9]*')"
else echo "@@ipvlan=fail"; fi
if ip netns add wvmns && ip link set wvmi0 netns wvmns && ip -n wvmns link set wvmi0 up; then
  echo "@@netns=$(ip -n wvmns -d -o link show wvmi0 | grep -o '[<,]UP[,>].*ipvlan  mode l2' | cut -c2-3)"
else echo "@@netns=fail"; fi
if ip link add wvmd0 type dummy; then echo "@@dummy=ok"; else echo "@@dummy=fail"; fi
echo "@@sctp_sysctl=$(sysctl -n net.sctp.max_burst 2>&1)"
python3 - <<'PY' || echo "@@sctp=fail"
import socket
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
srv.bind(("127.0.0.1", 0)); srv.listen(1)
cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
cli.connect(srv.getsockname()); conn, _ = srv.accept(); cli.sendall(b"weft")
print("@@sctp=" + conn.recv(4).decode())
PY
if echo probe >${probeFile}; then echo "@@repo_write=ok"; else echo "@@repo_write=fail"; fi
ip netns del wvmns; ip link del wvmb0; ip link del wvmd0
`;

describe('the test VM (Debian kernel under qemu)', () => {
  let vm: ReturnType<typeof vmRunnerAvailable> = { ok: false, reason: 'not checked' };
  let run: VmResult | undefined;
  const probes = new Map<string, string>();
  let tests: VmTest[] = [];
  let log = '';

  /** Skips loudly unless root and the VM ran. */
  const need = (ctx: { skip: (note?: string) => void }) => {
    privileged(ctx);
    if (!vm.ok) {
      console.log(`SKIPPED: ${vm.reason}`);
      ctx.skip(vm.reason);
    }
    expect(run, 'the VM run').toBeDefined();
  };

  beforeAll(
    async () => {
      if (process.getuid?.() !== 0) return;
      vm = vmRunnerAvailable();
      if (!vm.ok) return;
      console.log(`test VM: ${vm.detail}`);
      run = await runInVm(`${PROBES}\n${vitestInVmCommand(SUITE, { testNamePattern: PATTERN })}`, {
        timeoutMs: VM_TIMEOUT_MS,
      });
      for (const [, k, v] of run.stdout.matchAll(/^@@([a-z_]+)=(.*)$/gm)) probes.set(k!, v!.trim());
      ({ tests, log } = parseVitestInVm(run.stdout));
      const timing = run.stderr.match(/^run-in-vm: .*boot to command.*$/m)?.[0];
      console.log(`test VM: exit ${run.code} after ${(run.durationMs / 1000).toFixed(1)}s; ${timing ?? ''}`);
    },
    VM_TIMEOUT_MS + 2 * 60_000,
  );

  it('boots and runs the command to the end', (ctx) => {
    need(ctx);
    if (run!.code === 3 || run!.code === 4 || run!.timedOut)
      console.log(`the VM run failed:\n${run!.stderr}`);
    expect(run!.timedOut).toBe(false);
    expect(probes.get('in_vm')).toBe('1');
  });

  it("runs Debian's kernel, with the BPF fs and cgroup2 mounted", (ctx) => {
    need(ctx);
    expect(probes.get('uname')).toMatch(/^\d+\.\d+\.\d+-\d+-amd64$/);
    expect(existsSync(`/boot/vmlinuz-${probes.get('uname')}`)).toBe(true);
    expect(probes.get('bpffs')).toBe('bpf_fs');
    expect(probes.get('cgroup')).toBe('cgroup2fs');
  });

  it('has ipvlan (ip link add ... type ipvlan) and moves it into a netns made by ip netns add', (ctx) => {
    need(ctx);
    expect(probes.get('ipvlan')).toBe('ipvlan  mode l2');
    expect(probes.get('netns')).toBe('UP');
  });

  it('has SCTP (a real association over loopback) and dummy links', (ctx) => {
    need(ctx);
    expect(probes.get('sctp_sysctl')).toMatch(/^\d+$/);
    expect(probes.get('sctp')).toBe('weft');
    expect(probes.get('dummy')).toBe('ok');
  });

  it('leaves the host untouched: a file written into the repo inside stays inside', (ctx) => {
    need(ctx);
    expect(probes.get('repo_write')).toBe('ok');
    expect(existsSync(probeFile)).toBe(false);
  });

  it('passes the ipvlan tests of netlink and the datapath inside the VM', (ctx) => {
    need(ctx);
    // The log of vitest inside the VM, for CI: which tests ran there and how they ended.
    console.log(
      `vitest inside the VM (exit ${run!.code}):\n` +
        tests.map((t) => `  ${t.status.padEnd(7)} ${t.fullName}`).join('\n') +
        `\n${log
          .split('\n')
          .filter((l) => /Test Files|Tests |Duration|FAIL|SKIPPED/.test(l))
          .join('\n')}`,
    );
    expect(tests.length, `no test report came back; output:\n${log}\n${run!.stderr}`).toBeGreaterThan(0);
    const failed = tests.filter((t) => t.status === 'failed');
    expect(failed.map((t) => `${t.fullName}: ${t.failureMessages.join('\n')}`)).toEqual([]);
    for (const name of MUST_PASS) {
      const t = tests.find((x) => name.test(`${x.file} ${x.fullName}`));
      expect(t, `a test matching ${name} inside the VM`).toBeDefined();
      expect(t!.status, t!.fullName).toBe('passed');
    }
    expect(run!.code).toBe(0);
  });
});
