/**
 * The product path end to end: the shipped executable as weft-agent (manifests source) and as
 * weft-cni (veth mode, and generic-veth chained after the reference bridge), pods in real
 * namespaces, real HTTP between them, NetworkPolicies written into the manifests dir. Also what
 * users rely on when the agent is down: code 11, degraded mode, queued deletions, adoption.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentClient } from '@weft/agent-api';
import { privileged, requireCommands, ScratchNetns } from '@weft/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hostVethName } from '../pod/host-names';
import { DIST_BIN, REFERENCE_CNI_DIR, runCni, type CniOutcome } from '../testing/cni-run';
import { canonical } from '../testing/chain-fixtures';
import { addList, delList, type ConfList } from '../testing/conflist-run';

const BIN = DIST_BIN;
const NODE = 'wi-node';
let work = '';
let pin = '';
let agent: ChildProcess | undefined;
const namespaces: ScratchNetns[] = [];

const sock = () => join(work, 'agent.sock');
const manifests = () => join(work, 'manifests');
const client = () => new AgentClient({ socketPath: sock(), timeoutMs: 5000 });

function netConf(extra: Record<string, unknown> = {}) {
  return {
    cniVersion: '1.1.0',
    name: 'winet',
    type: 'weft-cni',
    agentSocket: sock(),
    stateDir: join(work, 'state'),
    pinRoot: pin,
    ipam: { type: 'weft-host-local', ranges: [[{ subnet: '10.89.0.0/24' }]], dataDir: join(work, 'ipam') },
    ...extra,
  };
}

const agentLog = () => join(work, 'agent.log');

/** The CNI requests the agent's CNI server ran (the shim forwarded), from its log. */
function servedByAgent(): { command: string; containerId: string; exitCode: number }[] {
  return readFileSync(agentLog(), 'utf8')
    .split('\n')
    .filter((l) => l.includes('"msg":"CNI request"'))
    .map((l) => JSON.parse(l));
}

async function startAgent(): Promise<void> {
  const log = openSync(agentLog(), 'a');
  agent = spawn(
    join(BIN, 'weft-agent'),
    ['--manifests', manifests(), '--node-name', NODE, '--socket', sock(), '--state-dir', join(work, 'state'),
      '--queue-dir', join(work, 'state', 'queue'), '--pin-root', pin, '--log-level', 'info'],
    { stdio: ['ignore', 'ignore', log], env: { PATH: process.env.PATH } },
  );
  closeSync(log);
  for (let i = 0; i < 200; i++) {
    try {
      const s = await client().status();
      if (s.sourceSynced) return;
    } catch {
      /* not up yet */
    }
    await sleep(100);
  }
  throw new Error('weft-agent did not come up');
}

async function stopAgent(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const a = agent;
  agent = undefined;
  if (!a || a.exitCode !== null) return;
  const exited = new Promise((r) => a.once('exit', r));
  a.kill(signal);
  await exited;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface TestPod {
  ref: string; // NS/NAME
  ns: ScratchNetns;
  id: string;
  ip?: string;
}

function pod(ref: string): TestPod {
  const ns = new ScratchNetns('wip');
  namespaces.push(ns);
  return { ref, ns, id: `wi-${ref.replace('/', '-')}-${ns.name}` };
}

const podArgs = (p: TestPod) => `IgnoreUnknown=1;K8S_POD_NAMESPACE=${p.ref.split('/')[0]};K8S_POD_NAME=${p.ref.split('/')[1]}`;

async function add(p: TestPod, conf: object = netConf()): Promise<CniOutcome> {
  const r = await runCni(join(BIN, 'weft-cni'), { command: 'ADD', conf, containerId: p.id, netns: p.ns.path, args: podArgs(p) });
  if (r.code === 0) p.ip = r.json.ips[0].address.split('/')[0];
  return r;
}

const del = (p: TestPod, conf: object = netConf()) =>
  runCni(join(BIN, 'weft-cni'), { command: 'DEL', conf, containerId: p.id, netns: p.ns.path, args: podArgs(p) });

function ok(r: CniOutcome): void {
  if (r.code !== 0) throw new Error(`plugin failed (${r.code}): ${r.stdout} ${r.stderr}`);
}

function serve(p: TestPod, ...ports: number[]): void {
  const root = join(work, 'www');
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'index.html'), 'ok\n');
  for (const port of ports) p.ns.exec('busybox', 'httpd', '-p', String(port), '-h', root);
}

function reaches(from: TestPod, to: TestPod, port: number): boolean {
  try {
    from.ns.exec('curl', '-sS', '-m', '2', `http://${to.ip}:${port}/`);
    return true;
  } catch {
    return false;
  }
}

/** Probes until the answer is `want` (policy updates are asynchronous), then returns it. */
async function settle(from: TestPod, to: TestPod, port: number, want: boolean): Promise<boolean> {
  for (let i = 0; i < 20; i++) {
    if (reaches(from, to, port) === want) return want;
    await sleep(250);
  }
  return !want;
}

function writeManifest(name: string, yaml: string): void {
  writeFileSync(join(manifests(), `${name}.yaml.tmp`), yaml);
  execFileSync('mv', [join(manifests(), `${name}.yaml.tmp`), join(manifests(), `${name}.yaml`)]);
}

const PODS_YAML = `apiVersion: v1
kind: Namespace
metadata: { name: shop }
---
apiVersion: v1
kind: Namespace
metadata: { name: guests }
---
apiVersion: v1
kind: Pod
metadata: { name: frontend, namespace: shop, labels: { app: frontend } }
spec: { nodeName: ${NODE}, containers: [{ name: c, image: x }] }
---
apiVersion: v1
kind: Pod
metadata: { name: backend, namespace: shop, labels: { app: backend } }
spec: { nodeName: ${NODE}, containers: [{ name: c, image: x, ports: [{ name: http, containerPort: 80 }] }] }
---
apiVersion: v1
kind: Pod
metadata: { name: visitor, namespace: guests, labels: { app: visitor } }
spec: { nodeName: ${NODE}, containers: [{ name: c, image: x }] }
---
apiVersion: v1
kind: Pod
metadata: { name: chained, namespace: shop, labels: { app: backend } }
spec: { nodeName: ${NODE}, containers: [{ name: c, image: x, ports: [{ name: http, containerPort: 80 }] }] }
`;

const POLICY_YAML = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: backend-from-frontend, namespace: shop }
spec:
  podSelector: { matchLabels: { app: backend } }
  policyTypes: [Ingress]
  ingress:
    - from: [{ podSelector: { matchLabels: { app: frontend } } }]
      ports: [{ protocol: TCP, port: http }]
`;

describe('weft-cni with a real weft-agent', () => {
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'wagentcni-'));
    pin = `/sys/fs/bpf/wagentcni-${process.pid}`;
    mkdirSync(manifests(), { recursive: true });
    writeManifest('pods', PODS_YAML);
  });
  afterEach(async () => {
    await stopAgent();
  });
  afterAll(async () => {
    await stopAgent();
    for (const ns of namespaces) {
      try {
        execFileSync('ip', ['netns', 'pids', ns.name], { encoding: 'utf8' })
          .split('\n')
          .filter(Boolean)
          .forEach((pid) => process.kill(Number(pid)));
      } catch {
        /* gone */
      }
      ns.remove();
    }
    try {
      execFileSync('ip', ['link', 'del', 'wibr0'], { stdio: 'ignore' });
    } catch {
      /* not made */
    }
    rmSync(pin, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  it('registers pods, enforces a NetworkPolicy from the manifests dir, and lifts it when deleted', async (ctx) => {
    privileged(ctx);
    requireCommands(ctx, join(BIN, 'weft-agent'), 'curl', 'busybox');
    await startAgent();
    const frontend = pod('shop/frontend');
    const backend = pod('shop/backend');
    const visitor = pod('guests/visitor');
    const results = new Map<TestPod, CniOutcome>();
    for (const p of [frontend, backend, visitor]) {
      const r = await add(p);
      ok(r);
      results.set(p, r);
    }
    serve(backend, 80, 8080);

    // The weft-cni shim handed the ADDs to the agent, which ran them (no weft-cni process of their own).
    const served = servedByAgent().filter((r) => r.command === 'ADD').map((r) => [r.containerId, r.exitCode]);
    expect(served).toEqual(expect.arrayContaining([frontend, backend, visitor].map((p) => [p.id, 0])));
    const endpoints = await client().listEndpoints();
    expect(endpoints.map((e) => e.pod).sort()).toEqual(['guests/visitor', 'shop/backend', 'shop/frontend']);
    expect(endpoints.every((e) => e.state === 'ready')).toBe(true);
    expect(endpoints.find((e) => e.pod === 'shop/backend')?.interface).toBe(hostVethName(backend.id, 'eth0'));

    expect(reaches(visitor, backend, 80)).toBe(true);
    writeManifest('policy', POLICY_YAML);
    expect(await settle(visitor, backend, 80, false)).toBe(false);
    expect(reaches(frontend, backend, 80)).toBe(true);
    expect(reaches(frontend, backend, 8080)).toBe(false);
    const trace = await client().trace({ from: 'guests/visitor', to: 'shop/backend', port: 80, protocol: 'TCP' });
    expect(trace.verdict).toBe('denied');

    unlinkSync(join(manifests(), 'policy.yaml'));
    expect(await settle(visitor, backend, 80, true)).toBe(true);
    expect(reaches(frontend, backend, 8080)).toBe(true);

    // CHECK verifies the pod and asks the agent about the endpoint too.
    const check = await runCni(join(BIN, 'weft-cni'), {
      command: 'CHECK',
      conf: { ...netConf(), prevResult: results.get(frontend)!.json },
      containerId: frontend.id,
      netns: frontend.ns.path,
      args: podArgs(frontend),
    });
    ok(check);

    for (const p of [frontend, backend, visitor]) ok(await del(p));
    const left = (await client().listEndpoints()).map((e) => e.containerId);
    expect(left).not.toContain(backend.id);
  }, 120_000);

  it('agent down: ADD fails with 11 and leaves nothing; DEL is queued and replayed; degraded pods are adopted', async (ctx) => {
    privileged(ctx);
    requireCommands(ctx, join(BIN, 'weft-agent'), 'curl', 'busybox');
    await startAgent();
    const backend = pod('shop/backend');
    const visitor = pod('guests/visitor');
    ok(await add(backend));
    serve(backend, 80);
    await stopAgent('SIGKILL');

    // 1. Not degraded: 11, no address and no link left behind.
    const refused = pod('shop/frontend');
    const r = await add(refused);
    expect(r.json).toMatchObject({ code: 11 });
    expect(readdirSync(join(work, 'ipam', 'winet')).filter((f) => f.startsWith('10.'))).toEqual([backend.ip]);
    expect(() => execFileSync('ip', ['link', 'show', hostVethName(refused.id, 'eth0')], { stdio: 'ignore' })).toThrow();

    // 2. Degraded: the pod gets its network now, policy comes with the agent.
    ok(await add(visitor, netConf({ degraded: true })));
    expect(reaches(visitor, backend, 80)).toBe(true);

    // 3. DEL while the agent is down succeeds and is queued.
    ok(await del(backend));
    expect(readdirSync(join(work, 'state', 'queue')).length).toBeGreaterThanOrEqual(1);

    // The agent comes back: it replays the deletion and adopts the degraded pod.
    writeManifest('policy', POLICY_YAML);
    await startAgent();
    const endpoints = await client().listEndpoints();
    expect(endpoints.map((e) => e.containerId)).not.toContain(backend.id);
    expect(endpoints.find((e) => e.containerId === visitor.id)).toMatchObject({ pod: 'guests/visitor', state: 'ready' });
    expect(readdirSync(join(work, 'state', 'queue'))).toEqual([]);
    unlinkSync(join(manifests(), 'policy.yaml'));
    ok(await del(visitor, netConf({ degraded: true })));
  }, 120_000);

  it('chained after the reference bridge (generic-veth): the previous result passes through, policy applies', async (ctx) => {
    privileged(ctx);
    requireCommands(ctx, join(BIN, 'weft-agent'), 'curl', 'busybox', join(REFERENCE_CNI_DIR, 'bridge'));
    await startAgent();
    const list: ConfList = {
      cniVersion: '1.0.0',
      name: 'wichain',
      plugins: [
        {
          type: 'bridge', bridge: 'wibr0', isGateway: true,
          ipam: { type: 'host-local', ranges: [[{ subnet: '10.88.7.0/24' }]], dataDir: join(work, 'ipam-chain') },
        },
        { type: 'weft-cni', chainingMode: 'generic-veth', agentSocket: sock(), stateDir: join(work, 'state'), pinRoot: pin },
      ],
    };
    const server = pod('shop/chained');
    const client1 = pod('guests/visitor');
    const client2 = pod('shop/frontend');
    const rts = [server, client1, client2].map((p) => ({ containerId: p.id, netns: p.ns.path, args: podArgs(p) }));
    const outcomes = [];
    for (const rt of rts) outcomes.push(await addList(list, rt));
    outcomes.forEach((o, i) => {
      expect(o.error, `ADD ${i}`).toBeUndefined();
    });
    const [srv, c1, c2] = outcomes;
    const firstIp = (o: typeof srv) => (o!.result!.ips as Array<{ address: string }>)[0]!.address.split('/')[0];
    server.ip = firstIp(srv);
    client1.ip = firstIp(c1);
    client2.ip = firstIp(c2);
    // weft passed bridge's result on unchanged (up to an empty "dns": {}, which is no DNS at all).
    expect(canonical(srv!.runs[1]!.outcome.json)).toEqual(canonical(srv!.runs[0]!.outcome.json));
    serve(server, 80);
    expect(reaches(client1, server, 80)).toBe(true);
    writeManifest('policy', POLICY_YAML);
    expect(await settle(client1, server, 80, false)).toBe(false);
    expect(reaches(client2, server, 80)).toBe(true);
    const ep = (await client().listEndpoints()).find((e) => e.containerId === server.id);
    expect(ep).toMatchObject({ mode: 'generic-veth', pod: 'shop/chained', ingressEnforced: true });
    unlinkSync(join(manifests(), 'policy.yaml'));
    for (const [i, rt] of rts.entries()) {
      const d = await delList(list, rt, outcomes[i]!.result);
      expect(d.error, `DEL ${i}`).toBeUndefined();
    }
  }, 120_000);
});
