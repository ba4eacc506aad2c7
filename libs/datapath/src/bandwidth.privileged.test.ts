/**
 * weft chained before the reference `bandwidth` plugin (containernetworking-plugins), on a veth pod.
 * bandwidth shapes on the host veth: traffic to the pod with a `tbf` root qdisc, traffic from the pod
 * with an `ingress` qdisc (handle ffff:) whose u32 filter mirreds everything to an ifb device with its
 * own tbf. An ingress qdisc cannot coexist with clsact, so bandwidth needs weft on tcx.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tcxSupported, type TcMechanism } from '@weft/bpf';
import { privileged } from '@weft/testkit';
import { Datapath, IPPROTO, type DatapathEvents, type EndpointPolicy } from './index';
import { testPinRoot, TestTopology, type TestPod } from './testing/topology';

/** $WEFT_BPF_DIR: try other objects (e.g. a patched build) against this test. */
const OBJECT_DIR = process.env.WEFT_BPF_DIR ?? resolve(__dirname, '../../../bpf/build');
const isRoot = process.getuid?.() === 0;
const ID = { A: 1101, B: 1102, C: 1103 };
const EP = { A: 21, B: 22 };

let saidNoTcx = false;

const A_POLICY: EndpointPolicy = {
  ingressEnforced: true,
  egressEnforced: false,
  entries: [
    {
      identity: ID.B,
      protocol: IPPROTO.TCP,
      portLow: 80,
      portHigh: 80,
      direction: 'ingress',
      verdict: 'allow',
    },
  ],
};

describe.each(['tcx', 'clsact'] as TcMechanism[])('bandwidth plugin qdiscs beside weft (%s)', (mode) => {
  let topo: TestTopology | undefined;
  let A: TestPod, B: TestPod, C: TestPod;
  let dp: Datapath;
  let events: DatapathEvents;
  let pinRoot = '';
  let stateDir = '';
  const ifb = 'wbifb0';
  const unsupported = () => mode === 'tcx' && !tcxSupported();

  const tc = (...args: string[]) =>
    execFileSync('ip', ['netns', 'exec', topo!.router, 'tc', ...args], { encoding: 'utf8', stdio: 'pipe' });
  const txPackets = (dev: string) =>
    JSON.parse(
      execFileSync('ip', ['-n', topo!.router, '-s', '-j', 'link', 'show', dev], { encoding: 'utf8' }),
    )[0].stats64.tx.packets as number;
  const need = (ctx: { skip: (note?: string) => void }) => {
    privileged(ctx);
    if (unsupported()) {
      if (!saidNoTcx)
        console.log('SKIPPED: this kernel has no tcx (needs 6.6+): bandwidth cannot run beside weft here');
      saidNoTcx = true;
      ctx.skip('no tcx in this kernel');
    }
  };

  beforeAll(async () => {
    if (!isRoot || unsupported()) return;
    pinRoot = testPinRoot();
    stateDir = mkdtempSync(join(tmpdir(), 'weft-test-bw-state-'));
    topo = new TestTopology('wq');
    A = topo.addPod('A', 1);
    B = topo.addPod('B', 2);
    C = topo.addPod('C', 3);
    await Promise.all([A, B, C].map((p) => p.start()));
    dp = Datapath.open({ pinRoot, stateDir, objectDir: OBJECT_DIR, tcMode: mode });
    events = dp.events();
    const spec = (pod: TestPod, endpointId: number, identity: number, policy?: EndpointPolicy) => ({
      endpointId,
      identity,
      ips: [pod.ipv4, pod.ipv6],
      mac: pod.mac,
      ifname: pod.hostIf,
      hostNetns: topo!.routerNetnsPath,
      policy,
    });
    expect(dp.attachEndpoint(spec(A, EP.A, ID.A, A_POLICY)).tcMechanism).toBe(mode);
    dp.attachEndpoint(spec(B, EP.B, ID.B));
    dp.upsertIpcache([{ cidr: `${C.ipv4}/32`, identity: ID.C }]);
  });

  afterAll(() => {
    events?.close();
    if (dp) {
      dp.close();
      Datapath.destroy({ pinRoot, stateDir });
    }
    topo?.destroy();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  it("bandwidth's ingress shaping (tbf root qdisc on the host veth) can be added", (ctx) => {
    need(ctx);
    tc('qdisc', 'add', 'dev', A.hostIf, 'root', 'tbf', 'rate', '200mbit', 'burst', '512k', 'latency', '25ms');
    expect(tc('qdisc', 'show', 'dev', A.hostIf)).toMatch(/qdisc tbf .* root/);
  });

  it(
    mode === 'tcx'
      ? "bandwidth's egress shaping (ingress qdisc + mirred to ifb) can be added beside tcx"
      : 'bandwidth\'s egress shaping fails beside clsact ("create ingress qdisc: file exists"): bandwidth needs tcx',
    (ctx) => {
      need(ctx);
      const addIngress = () => tc('qdisc', 'add', 'dev', A.hostIf, 'ingress');
      if (mode === 'clsact') {
        expect(addIngress).toThrow(/Exclusivity flag on|File exists/);
        return;
      }
      addIngress();
      execFileSync('ip', ['-n', topo!.router, 'link', 'add', ifb, 'type', 'ifb']);
      execFileSync('ip', ['-n', topo!.router, 'link', 'set', ifb, 'up']);
      tc('qdisc', 'add', 'dev', ifb, 'root', 'tbf', 'rate', '200mbit', 'burst', '512k', 'latency', '25ms');
      tc(
        ...`filter add dev ${A.hostIf} parent ffff: protocol all u32 match u32 0 0 action mirred egress redirect dev ${ifb}`.split(
          ' ',
        ),
      );
      expect(tc('qdisc', 'show', 'dev', A.hostIf)).toMatch(/qdisc ingress ffff:/);
    },
  );

  it("weft's policy still enforces, in both directions, with the qdiscs in place", async (ctx) => {
    need(ctx);
    expect((await B.tcp(A, 80)).data).toBe('hello from A:80');
    expect((await B.tcp(A, 80, 6)).ok).toBe(true);
    expect((await C.tcp(A, 80)).ok).toBe(false);
    expect(
      await events.waitFor((e) => e.type === 'drop' && e.endpointId === EP.A && e.source === C.ipv4, 1500),
    ).toMatchObject({ reason: 'WEFT_DROP_POLICY_DEFAULT', direction: 'ingress', peerIdentity: ID.C });
    expect((await B.tcp(A, 81)).ok).toBe(false);
    expect((await A.tcp(B, 80)).ok).toBe(true); // A's egress is open, its replies come back
    expect((await A.udp(C, 53)).ok).toBe(true);
  });

  it("traffic to the pod goes through bandwidth's tbf", async (ctx) => {
    need(ctx);
    const before = Number(
      /Sent \d+ bytes (\d+) pkt/.exec(tc('-s', 'qdisc', 'show', 'dev', A.hostIf, 'root'))![1],
    );
    expect((await B.tcp(A, 80)).ok).toBe(true);
    const after = Number(
      /Sent \d+ bytes (\d+) pkt/.exec(tc('-s', 'qdisc', 'show', 'dev', A.hostIf, 'root'))![1],
    );
    expect(after).toBeGreaterThan(before);
  });

  // Passed packets leave weft's programs with TC_ACT_UNSPEC (tcx: TCX_NEXT), so what bandwidth adds
  // on the same device (its ingress qdisc redirecting to the ifb) still sees the pod's traffic.
  it("lets the pod's traffic on to bandwidth's ifb, so pod egress is shaped", async (ctx) => {
    need(ctx);
    if (mode !== 'tcx') {
      const why = 'with clsact, bandwidth cannot add its ingress qdisc at all (see the test above)';
      console.log(`SKIPPED: ${why}`);
      ctx.skip(why);
    }
    const before = txPackets(ifb);
    expect((await A.tcp(B, 80)).ok).toBe(true);
    expect(txPackets(ifb)).toBeGreaterThan(before);
  });
});
