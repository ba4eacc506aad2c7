import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildSync } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listTcx, queryTc, tcxLinkInfo, tcxSupported, type TcDirection, type TcMechanism } from '@weft/bpf';
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
const EP = { A: 11, B: 12, D: 14, E: 16, F: 17 };
/** $WEFT_BPF_DIR: run against other objects (e.g. a patched build). */
const OBJECT_DIR = process.env.WEFT_BPF_DIR ?? resolve(__dirname, '../../../bpf/build');
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
const MODES: TcMechanism[] = ['clsact', 'tcx'];
const kernelHasTcx = () => isRoot && tcxSupported();

let saidNoTcx = false;
/** Skips (saying why, once) unless root and, for tcx, a kernel with tcx (6.6+). */
function need(ctx: { skip: (note?: string) => void }, mode: TcMechanism): void {
  privileged(ctx);
  if (mode === 'tcx' && !kernelHasTcx()) {
    const release = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
    if (!saidNoTcx)
      console.log(`SKIPPED: kernel ${release} has no tcx (needs 6.6+); the clsact run covers it`);
    saidNoTcx = true;
    ctx.skip(`no tcx in kernel ${release}`);
  }
}

describe.each(MODES)('datapath with real traffic between namespaces (%s)', (mode) => {
  let topo: TestTopology | undefined;
  let A: TestPod, B: TestPod, C: TestPod, D: TestPod, E: TestPod, F: TestPod;
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

  /** weft's program on a pod's host veth hook (or, with `inPod`, on its eth0), by the endpoint's link pins. */
  const progOn = (pod: TestPod, endpointId: number, hook: TcDirection, inPod = false) =>
    queryTc(inPod ? 'eth0' : pod.hostIf, hook, {
      netns: inPod ? pod.netnsPath : topo!.routerNetnsPath,
      pinPath: dp.linkPins(endpointId)[hook],
    }).progId;

  beforeAll(async () => {
    if (!isRoot || (mode === 'tcx' && !kernelHasTcx())) return;
    pinRoot = testPinRoot();
    stateDir = mkdtempSync(join(tmpdir(), 'weft-test-wb-state-'));
    topo = new TestTopology('wb');
    A = topo.addPod('A', 1);
    B = topo.addPod('B', 2);
    C = topo.addPod('C', 3);
    D = topo.addPod('D', 4);
    E = topo.addPod('E', 5); // no servers: E and F are only attached, detached and deleted
    F = topo.addPod('F', 6);
    await Promise.all([A, B, C, D].map((p) => p.start()));
    dp = Datapath.open({ pinRoot, stateDir, objectDir: OBJECT_DIR, tcMode: mode });
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
    need(ctx, mode);
    expect((await B.tcp(A, 80)).data).toBe('hello from A:80');
    expect((await C.tcp(A, 81)).ok).toBe(true);
    expect((await A.udp(B, 53)).data).toBe('B:ping from A');
    expect((await B.tcp(A, 80, 6)).ok).toBe(true);
    expect(B.ping(A)).toBe(true);
  });

  it('ingress "B may reach A on TCP 80": B gets through, C and port 81 are dropped, replies return', async (ctx) => {
    need(ctx, mode);
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
    need(ctx, mode);
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
    need(ctx, mode);
    const progBefore = progOn(A, EP.A, 'egress');
    expect(progBefore).toBeGreaterThan(0);
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
    expect(progOn(A, EP.A, 'egress')).toBe(progBefore);
  });

  it('narrowing an allow from any port to one port keeps that port open (no stale broad entry wins)', async (ctx) => {
    need(ctx, mode);
    dp.updatePolicy(EP.A, ingressPolicy(allow({ identity: ID.B, protocol: 0 })));
    expect((await B.tcp(A, 80)).ok).toBe(true);
    expect((await B.tcp(A, 81)).ok).toBe(true);
    dp.updatePolicy(EP.A, ingressPolicy(allow({ identity: ID.B, portLow: 81, portHigh: 81 })));
    expect((await B.tcp(A, 81)).ok).toBe(true);
    expect((await B.tcp(A, 80)).ok).toBe(false);
    expect(dp.readPolicyCounters(EP.A).map((c) => [c.identity, c.portLow, c.portHigh])).toEqual([
      [ID.B, 81, 81],
    ]);
    // A second handle (another process, e.g. after an agent restart) sees exactly the same entries.
    const other = Datapath.open({ pinRoot, stateDir, objectDir: OBJECT_DIR, tcMode: mode });
    try {
      expect(other.readPolicyCounters(EP.A).map((c) => [c.identity, c.portLow, c.portHigh])).toEqual([
        [ID.B, 81, 81],
      ]);
    } finally {
      other.close();
    }
    // Back and forth: the incremental path writes only what changed, and nothing stale survives.
    dp.updatePolicy(
      EP.A,
      ingressPolicy(
        allow({ identity: ID.B, portLow: 80, portHigh: 80 }),
        allow({ identity: ID.C, portLow: 81, portHigh: 81 }),
      ),
    );
    dp.updatePolicy(EP.A, ingressPolicy(allow({ identity: ID.B, portLow: 80, portHigh: 80 })));
    expect(dp.readPolicyCounters(EP.A).map((c) => [c.identity, c.portLow, c.portHigh])).toEqual([
      [ID.B, 80, 80],
    ]);
    expect((await B.tcp(A, 80)).ok).toBe(true);
    expect((await B.tcp(A, 81)).ok).toBe(false);
  });

  it('an update naming its changed peers rewrites only their entries; the rest keep their counters', async (ctx) => {
    need(ctx, mode);
    const b80 = allow({ identity: ID.B, portLow: 80, portHigh: 80 });
    dp.updatePolicy(EP.A, ingressPolicy(b80, allow({ identity: ID.C, portLow: 81, portHigh: 81 })));
    expect((await B.tcp(A, 80)).ok).toBe(true);
    const counted = () =>
      dp
        .readPolicyCounters(EP.A)
        .map((c) => ({ peer: c.identity, port: c.portLow, direction: c.direction, seen: c.packets > 0n }))
        .sort((x, y) => x.peer - y.peer || x.port - y.port);
    expect(counted()).toEqual([
      { peer: ID.B, port: 80, direction: 'ingress', seen: true },
      { peer: ID.C, port: 81, direction: 'ingress', seen: false },
    ]);
    // What the policy engine's delta says after C's pods change their named port: only C changed.
    const c82 = allow({ identity: ID.C, portLow: 82, portHigh: 82 });
    dp.updatePolicy(EP.A, ingressPolicy(b80, c82), { peers: new Set([ID.C]), entries: [c82] });
    expect(counted()).toEqual([
      { peer: ID.B, port: 80, direction: 'ingress', seen: true },
      { peer: ID.C, port: 82, direction: 'ingress', seen: false },
    ]);
    expect((await C.tcp(A, 81)).ok).toBe(false);
    expect(await drop({ endpointId: EP.A, destinationPort: 81, source: C.ipv4 })).toMatchObject({
      reason: 'WEFT_DROP_POLICY_DEFAULT',
    });
    expect((await B.tcp(A, 80)).ok).toBe(true);
    // Enforcement changing is never a peer-only change: the whole policy is written.
    dp.updatePolicy(
      EP.A,
      {
        ...ingressPolicy(b80),
        egressEnforced: true,
        entries: [b80, allow({ direction: 'egress', identity: ID.B, protocol: 0 })],
      },
      { peers: new Set([ID.C]), entries: [] },
    );
    expect(counted().map(({ peer, port, direction }) => ({ peer, port, direction }))).toEqual([
      { peer: ID.B, port: 0, direction: 'egress' },
      { peer: ID.B, port: 80, direction: 'ingress' },
    ]);
    expect((await A.tcp(C, 80)).ok).toBe(false);
    expect(await drop({ endpointId: EP.A, direction: 'egress', destination: C.ipv4 })).toMatchObject({
      peerIdentity: ID.C,
    });
    dp.updatePolicy(EP.A, ingressPolicy(b80));
    expect((await A.tcp(C, 80)).ok).toBe(true);
  });

  it('ipcache: 10.0.0.0/8 is X except a /32 that is Y, longest prefix wins', async (ctx) => {
    need(ctx, mode);
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
    need(ctx, mode);
    const policy = ingressPolicy(allow({ identity: ID.B, portLow: 80, portHigh: 80 }));
    const first = dp.attachEndpoint(spec(A, EP.A, ID.A, policy));
    expect(first.tcMechanism).toBe(mode);
    const hooks: TcDirection[] = ['ingress', 'egress'];
    const progs = hooks.map((d) => progOn(A, EP.A, d));
    const links =
      mode === 'tcx' ? hooks.map((d) => listTcx(A.hostIf, d, { netns: topo!.routerNetnsPath })) : [];
    const second = dp.attachEndpoint(spec(A, EP.A, ID.A, policy));
    expect(second).toEqual(first);
    expect(hooks.map((d) => progOn(A, EP.A, d))).toEqual(progs);
    expect(progs.every((id) => id > 0)).toBe(true);
    expect(dp.readPolicyCounters(EP.A)).toHaveLength(1);
    expect(topo!.pods.length).toBe(6);
    // Exactly one program per hook.
    if (mode === 'clsact') {
      const filters = execIn(topo!.router, 'tc', 'filter', 'show', 'dev', A.hostIf, 'egress');
      expect(filters.match(/ handle 0x/g)).toHaveLength(1);
    } else {
      expect(first.tcxLinks).toEqual(dp.linkPins(EP.A));
      // The same links, updated in place: one program each, and no clsact qdisc at all.
      expect(hooks.map((d) => listTcx(A.hostIf, d, { netns: topo!.routerNetnsPath }))).toEqual(links);
      expect(links.map((l) => l.programs.length)).toEqual([1, 1]);
      expect(execIn(topo!.router, 'tc', 'qdisc', 'show', 'dev', A.hostIf)).not.toMatch(/clsact/);
    }

    expect((await C.tcp(A, 80)).ok).toBe(false);
    expect(dp.detachEndpoint(EP.A)).toBe(true);
    for (const d of hooks) {
      expect(progOn(A, EP.A, d)).toBe(0);
      expect(queryTc(A.hostIf, d, { netns: topo!.routerNetnsPath }).progId).toBe(0); // clsact slot too
      if (mode === 'tcx') expect(listTcx(A.hostIf, d, { netns: topo!.routerNetnsPath }).programs).toEqual([]);
    }
    expect(existsSync(dp.linkPins(EP.A).ingress)).toBe(false);
    expect(dp.readPolicyCounters(EP.A)).toEqual([]);
    expect(dp.listEndpoints().map((e) => e.endpointId)).toEqual([EP.B]);
    expect(dp.lookupIpcache(A.ipv4)).toBeUndefined();
    expect((await C.tcp(A, 80)).ok).toBe(true); // nothing polices A any more
    expect(dp.detachEndpoint(EP.A)).toBe(false);
  });

  it('enforcement outlives the process that attached it (kill -9)', async (ctx) => {
    need(ctx, mode);
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
      options: { pinRoot, stateDir, objectDir: OBJECT_DIR, tcMode: mode },
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
    expect(progOn(A, EP.A, 'ingress')).toBeGreaterThan(0);

    expect((await B.tcp(A, 80)).ok).toBe(true);
    expect((await C.tcp(A, 80)).ok).toBe(false);
    expect((await B.tcp(A, 81)).ok).toBe(false);
    expect(await drop({ endpointId: EP.A, source: C.ipv4 })).toMatchObject({
      reason: 'WEFT_DROP_POLICY_DEFAULT',
    });
  });

  it('delivers events from the event loop (async iterator), with policy verdicts when enabled', async (ctx) => {
    need(ctx, mode);
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
    need(ctx, mode);
    dp.attachEndpoint({
      endpointId: EP.D,
      identity: ID.D,
      ips: [D.ipv4, D.ipv6],
      pod: { netnsPath: D.netnsPath, ifname: 'eth0' },
      policy: ingressPolicy(allow({ identity: ID.B, portLow: 80, portHigh: 80 })),
    });
    expect(progOn(D, EP.D, 'egress', true)).toBeGreaterThan(0);
    expect(progOn(D, EP.D, 'ingress', true)).toBeGreaterThan(0);
    expect(progOn(D, EP.D, 'egress')).toBe(0); // the link is on eth0 in the pod, not on the host veth

    expect((await B.tcp(D, 80)).data).toBe('hello from D:80');
    expect((await C.tcp(D, 80)).ok).toBe(false);
    expect(await drop({ endpointId: EP.D, source: C.ipv4 })).toMatchObject({
      reason: 'WEFT_DROP_POLICY_DEFAULT',
      direction: 'ingress',
    });
    expect((await D.tcp(C, 80)).ok).toBe(true);

    expect(dp.detachEndpoint(EP.D)).toBe(true);
    expect(progOn(D, EP.D, 'ingress', true)).toBe(0);
    expect((await C.tcp(D, 80)).ok).toBe(true);
  });

  it('IPvlan: attaches to a real ipvlan interface inside its netns', (ctx) => {
    need(ctx, mode);
    requireKernelFeature(ctx, 'ipvlan'); // says loudly why when the kernel has none
    const r = (...args: string[]) => execFileSync('ip', ['-n', topo!.router, ...args]);
    r('link', 'add', 'wbmaster', 'type', 'veth', 'peer', 'name', 'wbmasterp');
    r('link', 'add', 'link', 'wbmaster', 'name', 'wbipvl', 'type', 'ipvlan', 'mode', 'l3');
    r('link', 'set', 'wbipvl', 'netns', D.netns);
    execFileSync('ip', ['-n', D.netns, 'link', 'set', 'wbipvl', 'up']);
    const ipvlanPod = { netnsPath: D.netnsPath, ifname: 'wbipvl' };
    dp.attachEndpoint({ endpointId: 15, identity: ID.D, ips: ['10.251.1.5'], pod: ipvlanPod });
    const on = (hook: TcDirection) =>
      queryTc('wbipvl', hook, { netns: D.netnsPath, pinPath: dp.linkPins(15)[hook] }).progId;
    expect(on('egress')).toBeGreaterThan(0);
    expect(on('ingress')).toBeGreaterThan(0);
    expect(dp.detachEndpoint(15)).toBe(true);
    expect(on('egress')).toBe(0);
  });

  it('detaching an endpoint whose interface is already gone removes its stale link pins', (ctx) => {
    need(ctx, mode);
    const pins = dp.linkPins(EP.E);
    expect(dp.attachEndpoint(spec(E, EP.E, ID.D, OPEN)).tcMechanism).toBe(mode);
    execFileSync('ip', ['-n', topo!.router, 'link', 'del', E.hostIf]); // the pod's veth pair goes
    if (mode === 'tcx') {
      expect(tcxLinkInfo(pins.ingress)).toMatchObject({ ifindex: 0 }); // defunct, still pinned
      expect(tcxLinkInfo(pins.egress)).toMatchObject({ ifindex: 0 });
    }
    expect(dp.detachEndpoint(EP.E)).toBe(true);
    expect(existsSync(pins.ingress) || existsSync(pins.egress)).toBe(false);
    expect(dp.listEndpoints().map((e) => e.endpointId)).not.toContain(EP.E);
    expect(dp.lookupIpcache(E.ipv4)).toBeUndefined();
    expect(dp.detachEndpoint(EP.E)).toBe(false);
  });

  it('switching tcMode re-attaches by the other mechanism and leaves no copy behind', (ctx) => {
    need(ctx, mode);
    if (!kernelHasTcx()) return ctx.skip('switching needs both mechanisms: no tcx in this kernel');
    const other: TcMechanism = mode === 'tcx' ? 'clsact' : 'tcx';
    const dp2 = Datapath.open({ pinRoot, stateDir, objectDir: OBJECT_DIR, tcMode: other });
    const router = { netns: topo!.routerNetnsPath };
    const hooks: TcDirection[] = ['ingress', 'egress'];
    const state = () =>
      hooks.map((d) => ({
        tcx: listTcx(F.hostIf, d, router).programs.length,
        clsact: queryTc(F.hostIf, d, { ...router, mode: 'clsact' }).progId > 0,
      }));
    try {
      dp.attachEndpoint(spec(F, EP.F, ID.D, OPEN));
      const mine = mode === 'tcx' ? { tcx: 1, clsact: false } : { tcx: 0, clsact: true };
      const theirs = mode === 'tcx' ? { tcx: 0, clsact: true } : { tcx: 1, clsact: false };
      expect(state()).toEqual([mine, mine]);
      expect(dp2.attachEndpoint(spec(F, EP.F, ID.D)).tcMechanism).toBe(other);
      expect(state()).toEqual([theirs, theirs]);
      expect(existsSync(dp.linkPins(EP.F).ingress)).toBe(other === 'tcx');
      expect(dp.attachEndpoint(spec(F, EP.F, ID.D)).tcMechanism).toBe(mode);
      expect(state()).toEqual([mine, mine]);
      expect(dp.detachEndpoint(EP.F)).toBe(true);
      expect(state()).toEqual([
        { tcx: 0, clsact: false },
        { tcx: 0, clsact: false },
      ]);
    } finally {
      dp2.close();
    }
  });
});

function execIn(netns: string, cmd: string, ...args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', netns, cmd, ...args], { encoding: 'utf8' });
}
