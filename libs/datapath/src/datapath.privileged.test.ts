import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildSync } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryTc } from '@weft/bpf';
import { privileged, requireCommands, requireKernelFeature } from '@weft/testkit';
import {
  Datapath,
  IPPROTO,
  type DatapathEvent,
  type DatapathEvents,
  type EndpointPolicy,
  type EndpointSpec,
  type PolicyEntry,
} from './index';
import { testPinRoot, TestTopology, type TestPod } from './testing/topology';

const ID = { A: 1001, B: 1002, C: 1003, D: 1004, X: 2000, Y: 2001 };
const EP = { A: 11, B: 12, D: 14 };
const OBJECT_DIR = resolve(__dirname, '../../../bpf/build');
const NATIVE_DIR = resolve(__dirname, '../../native/build/Release');

const allow = (p: Partial<PolicyEntry>): PolicyEntry => ({
  identity: 0,
  protocol: IPPROTO.TCP,
  portLow: 0,
  portHigh: 0,
  direction: 'ingress',
  verdict: 'allow',
  ...p,
});
const ingressPolicy = (...entries: PolicyEntry[]): EndpointPolicy => ({
  ingressEnforced: true,
  egressEnforced: false,
  entries,
});
const OPEN: EndpointPolicy = { ingressEnforced: false, egressEnforced: false, entries: [] };

const isRoot = process.getuid?.() === 0;

describe('datapath with real traffic between namespaces', () => {
  let topo: TestTopology | undefined;
  let A: TestPod, B: TestPod, C: TestPod, D: TestPod;
  let dp: Datapath;
  let events: DatapathEvents;
  let pinRoot: string;
  let stateDir: string;

  const spec = (
    pod: TestPod,
    endpointId: number,
    identity: number,
    policy?: EndpointPolicy,
  ): EndpointSpec => ({
    endpointId,
    identity,
    ips: [pod.ipv4, pod.ipv6],
    mac: pod.mac,
    ifname: pod.hostIf,
    hostNetns: topo!.routerNetnsPath,
    policy,
  });

  const drop = (match: Partial<DatapathEvent>) =>
    events.waitFor(
      (e) => e.type === 'drop' && Object.entries(match).every(([k, v]) => e[k as keyof DatapathEvent] === v),
      1500,
    );

  beforeAll(async () => {
    if (!isRoot) return;
    pinRoot = testPinRoot();
    stateDir = mkdtempSync(join(tmpdir(), 'weft-test-wb-state-'));
    topo = new TestTopology('wb');
    A = topo.addPod('A', 1);
    B = topo.addPod('B', 2);
    C = topo.addPod('C', 3);
    D = topo.addPod('D', 4);
    await Promise.all([A, B, C, D].map((p) => p.start()));
    dp = Datapath.open({ pinRoot, stateDir, objectDir: OBJECT_DIR });
    events = dp.events();
    dp.attachEndpoint(spec(A, EP.A, ID.A, OPEN));
    dp.attachEndpoint(spec(B, EP.B, ID.B, OPEN));
    // C is not managed by weft here: only the ipcache knows its identity.
    dp.upsertIpcache([
      { cidr: `${C.ipv4}/32`, identity: ID.C },
      { cidr: `${C.ipv6}/128`, identity: ID.C },
    ]);
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

  it('passes everything while no policy selects the pods', async (ctx) => {
    privileged(ctx);
    expect((await B.tcp(A, 80)).data).toBe('hello from A:80');
    expect((await C.tcp(A, 81)).ok).toBe(true);
    expect((await A.udp(B, 53)).data).toBe('B:ping from A');
    expect((await B.tcp(A, 80, 6)).ok).toBe(true);
    expect(B.ping(A)).toBe(true);
  });

  it('ingress "B may reach A on TCP 80": B gets through, C and port 81 are dropped, replies return', async (ctx) => {
    privileged(ctx);
    dp.updatePolicy(EP.A, ingressPolicy(allow({ identity: ID.B, portLow: 80, portHigh: 80 })));

    expect((await B.tcp(A, 80)).data).toBe('hello from A:80'); // the greeting is A's reply
    expect((await B.tcp(A, 80, 6)).data).toBe('hello from A:80');

    expect((await C.tcp(A, 80)).ok).toBe(false);
    const ev = await drop({ endpointId: EP.A, source: C.ipv4, destinationPort: 80 });
    expect(ev).toMatchObject({
      reason: 'WEFT_DROP_POLICY_DEFAULT',
      direction: 'ingress',
      peerIdentity: ID.C,
      protocol: IPPROTO.TCP,
      destination: A.ipv4,
    });

    expect((await B.tcp(A, 81)).ok).toBe(false);
    expect(await drop({ endpointId: EP.A, source: B.ipv4, destinationPort: 81 })).toMatchObject({
      reason: 'WEFT_DROP_POLICY_DEFAULT',
      peerIdentity: ID.B,
    });

    expect((await C.tcp(A, 80, 6)).ok).toBe(false);
    expect(await drop({ endpointId: EP.A, source: C.ipv6, destinationPort: 80 })).toMatchObject({
      peerIdentity: ID.C,
    });

    // A's own connections out still work: their replies enter A as tracked replies.
    expect((await A.tcp(B, 80)).ok).toBe(true);
    expect((await A.udp(C, 53)).ok).toBe(true);
    // ICMP is not allowed in: B's ping is dropped, A's ping out gets its echo reply back.
    expect(B.ping(A)).toBe(false);
    expect(A.ping(B)).toBe(true);

    const counters = dp.readPolicyCounters(EP.A);
    expect(counters).toHaveLength(1);
    expect(counters[0]).toMatchObject({
      identity: ID.B,
      protocol: IPPROTO.TCP,
      portLow: 80,
      portHigh: 80,
      verdict: 'allow',
    });
    expect(counters[0]!.packets).toBeGreaterThanOrEqual(2n);
  });

  it('egress and UDP: A may send UDP 53 and ICMP to B only', async (ctx) => {
    privileged(ctx);
    dp.updatePolicy(EP.A, {
      ingressEnforced: false,
      egressEnforced: true,
      entries: [
        allow({ direction: 'egress', identity: ID.B, protocol: IPPROTO.UDP, portLow: 53, portHigh: 53 }),
        allow({ direction: 'egress', identity: ID.B, protocol: IPPROTO.ICMP }),
        allow({ direction: 'egress', identity: ID.B, protocol: IPPROTO.ICMPV6 }),
      ],
    });
    expect((await A.udp(B, 53)).data).toBe('B:ping from A');
    expect((await A.udp(B, 53, 6)).data).toBe('B:ping from A');
    expect((await A.udp(B, 54)).ok).toBe(false);
    expect(await drop({ endpointId: EP.A, direction: 'egress', destinationPort: 54 })).toMatchObject({
      reason: 'WEFT_DROP_POLICY_DEFAULT',
      protocol: IPPROTO.UDP,
      peerIdentity: ID.B,
    });
    expect((await A.udp(C, 53)).ok).toBe(false);
    expect(await drop({ endpointId: EP.A, direction: 'egress', destination: C.ipv4 })).toMatchObject({
      peerIdentity: ID.C,
    });
    expect((await A.tcp(B, 80)).ok).toBe(false);
    expect(A.ping(B)).toBe(true);
    expect(A.ping(B, 6)).toBe(true);
    expect(A.ping(C)).toBe(false);
    // Ingress is not enforced: B reaches A, and A's replies leave as tracked replies despite egress policy.
    expect((await B.tcp(A, 81)).ok).toBe(true);
  });

  it('deny wins over allow, and a policy change needs no re-attach', async (ctx) => {
    privileged(ctx);
    const progBefore = queryTc(A.hostIf, 'egress', { netns: topo!.routerNetnsPath }).progId;
    dp.updatePolicy(
      EP.A,
      ingressPolicy(
        allow({ identity: ID.B, portLow: 1, portHigh: 1023 }),
        allow({ identity: ID.B, portLow: 81, portHigh: 81, verdict: 'deny' }),
      ),
    );
    expect((await B.tcp(A, 80)).ok).toBe(true);
    expect((await B.tcp(A, 81)).ok).toBe(false);
    expect(await drop({ endpointId: EP.A, destinationPort: 81 })).toMatchObject({
      reason: 'WEFT_DROP_POLICY_DENY',
    });
    // Any-peer deny beats a peer-specific allow.
    dp.updatePolicy(
      EP.A,
      ingressPolicy(
        allow({ identity: ID.B, portLow: 80, portHigh: 80 }),
        allow({ identity: 0, protocol: 0, verdict: 'deny' }),
      ),
    );
    expect((await B.tcp(A, 80)).ok).toBe(false);
    expect(await drop({ endpointId: EP.A, destinationPort: 80, source: B.ipv4 })).toMatchObject({
      reason: 'WEFT_DROP_POLICY_DENY',
    });
    expect(queryTc(A.hostIf, 'egress', { netns: topo!.routerNetnsPath }).progId).toBe(progBefore);
  });

  it('ipcache: 10.0.0.0/8 is X except a /32 that is Y, longest prefix wins', async (ctx) => {
    privileged(ctx);
    dp.deleteIpcache([`${C.ipv4}/32`]);
    dp.upsertIpcache([{ cidr: '10.0.0.0/8', identity: ID.X }]);
    expect(dp.lookupIpcache('10.9.9.9')).toBe(ID.X);
    expect(dp.lookupIpcache(C.ipv4)).toBe(ID.X);
    expect(dp.lookupIpcache(B.ipv4)).toBe(ID.B); // its endpoint /32
    expect(dp.lookupIpcache('11.0.0.1')).toBeUndefined(); // world

    dp.updatePolicy(EP.A, ingressPolicy(allow({ identity: ID.X, portLow: 80, portHigh: 80 })));
    expect((await C.tcp(A, 80)).ok).toBe(true);
    dp.upsertIpcache([{ cidr: `${C.ipv4}/32`, identity: ID.Y }]);
    expect(dp.lookupIpcache(C.ipv4)).toBe(ID.Y);
    expect((await C.tcp(A, 80)).ok).toBe(false);
    expect(await drop({ endpointId: EP.A, source: C.ipv4 })).toMatchObject({ peerIdentity: ID.Y });
    dp.deleteIpcache(['10.0.0.0/8']);
    dp.upsertIpcache([{ cidr: `${C.ipv4}/32`, identity: ID.C }]);
  });

  it('attaching twice gives the same state; detaching leaves nothing for the pod', async (ctx) => {
    privileged(ctx);
    const policy = ingressPolicy(allow({ identity: ID.B, portLow: 80, portHigh: 80 }));
    const first = dp.attachEndpoint(spec(A, EP.A, ID.A, policy));
    const progs = ['ingress', 'egress'].map(
      (d) => queryTc(A.hostIf, d as 'ingress', { netns: topo!.routerNetnsPath }).progId,
    );
    const second = dp.attachEndpoint(spec(A, EP.A, ID.A, policy));
    expect(second).toEqual(first);
    expect(
      ['ingress', 'egress'].map(
        (d) => queryTc(A.hostIf, d as 'ingress', { netns: topo!.routerNetnsPath }).progId,
      ),
    ).toEqual(progs);
    expect(progs.every((id) => id > 0)).toBe(true);
    expect(dp.readPolicyCounters(EP.A)).toHaveLength(1);
    expect(topo!.pods.length).toBe(4);
    // Exactly one filter per hook.
    const filters = execIn(topo!.router, 'tc', 'filter', 'show', 'dev', A.hostIf, 'egress');
    expect(filters.match(/ handle 0x/g)).toHaveLength(1);

    expect((await C.tcp(A, 80)).ok).toBe(false);
    expect(dp.detachEndpoint(EP.A)).toBe(true);
    for (const d of ['ingress', 'egress'] as const)
      expect(queryTc(A.hostIf, d, { netns: topo!.routerNetnsPath }).progId).toBe(0);
    expect(dp.readPolicyCounters(EP.A)).toEqual([]);
    expect(dp.listEndpoints().map((e) => e.endpointId)).toEqual([EP.B]);
    expect(dp.lookupIpcache(A.ipv4)).toBeUndefined();
    expect((await C.tcp(A, 80)).ok).toBe(true); // nothing polices A any more
    expect(dp.detachEndpoint(EP.A)).toBe(false);
  });

  it('enforcement outlives the process that attached it (kill -9)', async (ctx) => {
    privileged(ctx);
    requireCommands(ctx, process.execPath);
    const bundle = join(stateDir, 'attach-child.cjs');
    buildSync({
      entryPoints: [join(__dirname, 'testing/attach-child.ts')],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      outfile: bundle,
      logLevel: 'error',
    });
    const arg = JSON.stringify({
      options: { pinRoot, stateDir, objectDir: OBJECT_DIR },
      endpoints: [spec(A, EP.A, ID.A, ingressPolicy(allow({ identity: ID.B, portLow: 80, portHigh: 80 })))],
    });
    const child = spawn(process.execPath, [bundle, arg], {
      env: { ...process.env, WEFT_NATIVE_DIR: NATIVE_DIR },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((res, rej) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('attached') && res());
      child.once('exit', (code) => rej(new Error(`attach child exited ${code}`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(child.signalCode).toBe('SIGKILL');

    expect((await B.tcp(A, 80)).ok).toBe(true);
    expect((await C.tcp(A, 80)).ok).toBe(false);
    expect((await B.tcp(A, 81)).ok).toBe(false);
    expect(await drop({ endpointId: EP.A, source: C.ipv4 })).toMatchObject({
      reason: 'WEFT_DROP_POLICY_DEFAULT',
    });
  });

  it('delivers events from the event loop (async iterator), with policy verdicts when enabled', async (ctx) => {
    privileged(ctx);
    dp.setEventConfig({ verdicts: true });
    try {
      // No consume() here: records arrive only through the addon's uv_poll on the ring's epoll fd.
      const iterator = events[Symbol.asyncIterator]();
      const deadline = Date.now() + 3000;
      const verdict = (async () => {
        while (Date.now() < deadline) {
          const next = await Promise.race([
            iterator.next(),
            new Promise<undefined>((r) => setTimeout(() => r(undefined), 200)),
          ]);
          const ev = next?.value as DatapathEvent | undefined;
          if (
            ev?.type === 'policy-verdict' &&
            ev.endpointId === EP.A &&
            ev.source === B.ipv4 &&
            ev.destinationPort === 80
          )
            return ev;
        }
        return undefined;
      })();
      expect((await B.tcp(A, 80)).ok).toBe(true);
      expect(await verdict).toMatchObject({
        endpointId: EP.A,
        verdict: 'allow',
        ctStatus: 'new',
        peerIdentity: ID.B,
        direction: 'ingress',
      });
    } finally {
      dp.setEventConfig({});
    }
  });

  it('IPvlan/ENI path: programs on the pod interface inside its netns (tested on a veth pod end)', async (ctx) => {
    privileged(ctx);
    dp.attachEndpoint({
      endpointId: EP.D,
      identity: ID.D,
      ips: [D.ipv4, D.ipv6],
      pod: { netnsPath: D.netnsPath, ifname: 'eth0' },
      policy: ingressPolicy(allow({ identity: ID.B, portLow: 80, portHigh: 80 })),
    });
    expect(queryTc('eth0', 'egress', { netns: D.netnsPath }).progId).toBeGreaterThan(0);
    expect(queryTc('eth0', 'ingress', { netns: D.netnsPath }).progId).toBeGreaterThan(0);
    expect(queryTc(D.hostIf, 'egress', { netns: topo!.routerNetnsPath }).progId).toBe(0);

    expect((await B.tcp(D, 80)).data).toBe('hello from D:80');
    expect((await C.tcp(D, 80)).ok).toBe(false);
    expect(await drop({ endpointId: EP.D, source: C.ipv4 })).toMatchObject({
      reason: 'WEFT_DROP_POLICY_DEFAULT',
      direction: 'ingress',
    });
    expect((await D.tcp(C, 80)).ok).toBe(true);

    expect(dp.detachEndpoint(EP.D)).toBe(true);
    expect(queryTc('eth0', 'ingress', { netns: D.netnsPath }).progId).toBe(0);
    expect((await C.tcp(D, 80)).ok).toBe(true);
  });

  it('IPvlan: attaches to a real ipvlan interface inside its netns', (ctx) => {
    privileged(ctx);
    requireKernelFeature(ctx, 'ipvlan'); // says loudly why when the kernel has none
    const r = (...args: string[]) => execFileSync('ip', ['-n', topo!.router, ...args]);
    r('link', 'add', 'wbmaster', 'type', 'veth', 'peer', 'name', 'wbmasterp');
    r('link', 'add', 'link', 'wbmaster', 'name', 'wbipvl', 'type', 'ipvlan', 'mode', 'l3');
    r('link', 'set', 'wbipvl', 'netns', D.netns);
    execFileSync('ip', ['-n', D.netns, 'link', 'set', 'wbipvl', 'up']);
    const ipvlanPod = { netnsPath: D.netnsPath, ifname: 'wbipvl' };
    dp.attachEndpoint({ endpointId: 15, identity: ID.D, ips: ['10.251.1.5'], pod: ipvlanPod });
    expect(queryTc('wbipvl', 'egress', { netns: D.netnsPath }).progId).toBeGreaterThan(0);
    expect(queryTc('wbipvl', 'ingress', { netns: D.netnsPath }).progId).toBeGreaterThan(0);
    expect(dp.detachEndpoint(15)).toBe(true);
    expect(queryTc('wbipvl', 'egress', { netns: D.netnsPath }).progId).toBe(0);
  });
});

function execIn(netns: string, cmd: string, ...args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', netns, cmd, ...args], { encoding: 'utf8' });
}
