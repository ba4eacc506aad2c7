/*
 * Network policy end to end, with real traffic: a real weft-agent process (in the test's "node"
 * netns) watching a --manifests dir, namespaces x, y, z (and w, created late) with pods a, b, c
 * as real netns pods registered through the agent API exactly as weft-cni registers them,
 * servers on 80 and 81 over TCP and UDP (SCTP where the kernel has it). Each case writes its
 * policies into the manifests dir, waits until the agent applied them, probes the whole matrix
 * with real connections and compares with the expected matrix (the policy lib's fixtures); and
 * `weft policy trace` (the agent API) must give the same verdicts. Cases follow the upstream
 * Kubernetes netpol e2e suite. On a mismatch both matrices are printed.
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import type { AgentClient } from '@weft/agent-api';
import { Datapath } from '@weft/datapath';
import {
  buildNetpolFixture,
  expectMatrix,
  formatMatrix,
  netpolPortName,
  type L4Protocol,
  type NetpolFixture,
  type ReachabilityMatrix,
} from '@weft/policy';
import { privileged, requireCommands } from '@weft/testkit';
import { AgentProcess, BPF_OBJECT_DIR, bundleAgent } from './testing/agent-process';
import { PodNetwork, sctpSupport, testPinRoot, type NetPod } from './testing/pod-network';

type Verdict = 'allow' | 'deny';
type Expect = (from: string, to: string) => Verdict | undefined;
interface Check {
  port: number;
  protocol: L4Protocol;
  expect: Expect;
}

const isRoot = process.getuid?.() === 0;
const NODE = 'node-e2e';
const SCTP = isRoot ? sctpSupport() : { ok: false as const, reason: 'not root' };
const PROTOCOLS: L4Protocol[] = SCTP.ok ? ['TCP', 'UDP', 'SCTP'] : ['TCP', 'UDP'];
const FX4 = buildNetpolFixture({ namespaces: ['x', 'y', 'z', 'w'], protocols: PROTOCOLS, nodeName: NODE });
const FX = buildNetpolFixture({ namespaces: ['x', 'y', 'z'], protocols: PROTOCOLS, nodeName: NODE });
const ns = (key: string) => key.split('/')[0]!;
// Inside the test VM (netpol-sctp-vm.privileged.test.ts) the CPU is emulated, 10-30x slower, and
// slower still while the host runs the rest of the suite: probes of loopback timed out at 6 s.
const IN_VM = process.env.WEFT_IN_VM === '1';
const SLOW = IN_VM ? 20 : 1;
const PROBE_TIMEOUT_MS = 600 * SLOW;

function namespaceYaml(name: string, labels: Record<string, string>): string {
  return `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${name}, labels: ${JSON.stringify(labels)}}\n`;
}

function podYaml(fx: NetpolFixture, key: string, labels?: Record<string, string>): string {
  const pod = fx.pods.find((p) => `${p.namespace}/${p.name}` === key)!;
  const ports = pod.ports.map((p) => ({
    name: p.name,
    containerPort: p.containerPort,
    protocol: p.protocol,
  }));
  return [
    'apiVersion: v1',
    'kind: Pod',
    `metadata: {name: ${pod.name}, namespace: ${pod.namespace}, labels: ${JSON.stringify(labels ?? pod.labels)}}`,
    `spec: {nodeName: ${NODE}, containers: [{name: server, image: agnhost, ports: ${JSON.stringify(ports)}}]}`,
    '',
  ].join('\n');
}

function clusterYaml(extraLabels: Record<string, Record<string, string>> = {}): string {
  return [
    ...FX.namespaces.map((n) => namespaceYaml(n.name, n.labels)),
    ...FX.podKeys.map((k) =>
      podYaml(
        FX,
        k,
        extraLabels[k]
          ? { ...FX.pods.find((p) => `${p.namespace}/${p.name}` === k)!.labels, ...extraLabels[k] }
          : undefined,
      ),
    ),
  ].join('---\n');
}

const np = (namespace: string, name: string, spec: Record<string, unknown>) =>
  JSON.stringify({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace },
    spec,
  });

describe('network policy end to end (real agent, real traffic)', () => {
  let net: PodNetwork | undefined;
  let work: string;
  let manifests: string;
  let pinRoot: string;
  let agent: AgentProcess | undefined;
  let api: AgentClient;
  let seq = 0;
  const pods = new Map<string, NetPod>();

  beforeAll(async () => {
    if (!isRoot) return;
    work = mkdtempSync(join(tmpdir(), 'weft-netpol-e2e-'));
    manifests = join(work, 'manifests');
    mkdirSync(manifests);
    pinRoot = testPinRoot('np');
    const bundle = bundleAgent(join(work, 'bin'));
    net = new PodNetwork('np');
    for (const key of FX4.podKeys) pods.set(key, net.addPod(key, FX4.ip(key)));
    await Promise.all(
      [...pods.values()].map(async (p) => {
        await p.start({ tcp: [80, 81], udp: [80, 81] });
        if (SCTP.ok) await p.startSctp([80, 81]);
      }),
    );
    await write({ 'cluster.yaml': clusterYaml() });
    const socketPath = join(work, 'agent.sock');
    agent = new AgentProcess({
      bundle,
      socketPath,
      netnsPath: net.nodeNetnsPath,
      logFile: join(work, 'agent.log'),
      clientTimeoutMs: 5000 * SLOW,
      args: [
        ...['--manifests', manifests, '--node-name', NODE, '--socket', socketPath],
        ...['--state-dir', join(work, 'state'), '--queue-dir', join(work, 'queue')],
        ...['--pin-root', pinRoot, '--bpf-dir', BPF_OBJECT_DIR, '--log-level', 'debug'],
      ],
    });
    await agent.start(20_000 * SLOW);
    api = agent.client;
    // x, y, z pods register now (w's namespace and pods come later, in their case).
    for (const key of FX.podKeys) await api.registerEndpoint(pods.get(key)!.registration());
  }, 120_000 * SLOW);

  afterAll(async () => {
    await agent?.kill('SIGKILL');
    if (pinRoot) {
      try {
        Datapath.destroy({ pinRoot, stateDir: join(work, 'state', 'datapath') });
      } catch (err) {
        console.log(`datapath cleanup: ${(err as Error).message}`);
      }
    }
    net?.destroy();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /**
   * Writes manifest files atomically, each with a marker policy that selects nothing, and waits
   * until the agent lists every marker: then everything in those files is in the kernel (the
   * agent writes a change to the maps before it shows it in the API).
   */
  async function write(files: Record<string, string | null>): Promise<void> {
    const markers: string[] = [];
    for (const [name, text] of Object.entries(files)) {
      const path = join(manifests, name);
      if (text === null) {
        rmSync(path, { force: true });
        continue;
      }
      const marker = `marker-${++seq}`;
      markers.push(marker);
      const body = `${text.trimEnd()}\n---\n${JSON.stringify({
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumClusterwideNetworkPolicy',
        metadata: { name: marker },
        spec: {
          endpointSelector: { matchLabels: { 'weft-e2e-marker': 'none' } },
          ingress: [{ fromEntities: ['all'] }],
        },
      })}\n`;
      writeFileSync(`${path}.tmp`, body);
      renameSync(`${path}.tmp`, path);
    }
    if (!api) return; // before the agent runs
    const deadline = Date.now() + 10_000 * SLOW;
    for (;;) {
      const names = new Set((await api.listPolicies()).map((p) => p.name));
      if (markers.every((m) => names.has(m))) return;
      if (Date.now() > deadline) throw new Error(`manifests not applied in time:\n${agent?.logTail()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async function setPolicies(yamlDocs: string[]): Promise<void> {
    await write({ 'policy.yaml': yamlDocs.length ? yamlDocs.join('\n---\n') : '' });
    const names = (await api.listPolicies()).filter((p) => !p.name.startsWith('marker-'));
    expect(names.length).toBe(yamlDocs.length);
  }

  async function probeMatrix(
    fx: NetpolFixture,
    port: number,
    protocol: L4Protocol,
  ): Promise<ReachabilityMatrix> {
    const probe = async (from: string, to: string) => {
      const src = pods.get(from)!;
      const dst = pods.get(to)!;
      const r =
        protocol === 'SCTP'
          ? await src.sctpProbe(dst.ip, port, PROBE_TIMEOUT_MS)
          : await src.probe(protocol, dst.ip, port, PROBE_TIMEOUT_MS);
      return r.ok ? 'allow' : 'deny';
    };
    const pairs = fx.podKeys.flatMap((f) => fx.podKeys.map((t) => [f, t] as const));
    const out: ReachabilityMatrix = new Map();
    const results = await Promise.all(pairs.map(([f, t]) => probe(f, t)));
    pairs.forEach(([f, t], i) => out.set(`${f}→${t}`, results[i]!));
    return out;
  }

  async function traceMatrix(
    fx: NetpolFixture,
    port: number,
    protocol: L4Protocol,
  ): Promise<ReachabilityMatrix> {
    const out: ReachabilityMatrix = new Map();
    await Promise.all(
      fx.podKeys.flatMap((from) =>
        fx.podKeys.map(async (to) => {
          const t = await api.trace({ from, to, port, protocol });
          out.set(`${from}→${to}`, t.verdict === 'allowed' ? 'allow' : 'deny');
        }),
      ),
    );
    return out;
  }

  /** Probes every check of a case (in parallel), retries mismatches once, compares. */
  async function verify(ctx: TestContext, checks: Check[], fx: NetpolFixture = FX): Promise<void> {
    const runnable = checks.filter((c) => c.protocol !== 'SCTP' || SCTP.ok);
    if (runnable.length < checks.length)
      console.log(`SCTP checks skipped: ${(SCTP as { reason: string }).reason}`);
    const expected = runnable.map((c) => expectMatrix(fx, 'allow', c.expect));
    // A pod reaching its own address never leaves its netns (loopback): allowed whatever the policy.
    const withLoopback = expected.map(
      (m) => new Map([...m].map(([k, v]) => [k, k.split('→')[0] === k.split('→')[1] ? 'allow' : v] as const)),
    );
    // In the VM one check at a time: 243 connections at once starved the pods' helpers.
    const probed: ReachabilityMatrix[] = [];
    if (IN_VM) for (const c of runnable) probed.push(await probeMatrix(fx, c.port, c.protocol));
    else probed.push(...(await Promise.all(runnable.map((c) => probeMatrix(fx, c.port, c.protocol)))));
    for (let i = 0; i < runnable.length; i++) {
      const c = runnable[i]!;
      const mismatched = [...probed[i]!].filter(([k, v]) => withLoopback[i]!.get(k) !== v).map(([k]) => k);
      if (mismatched.length > 0 && (mismatched.length <= 8 || IN_VM)) {
        console.log(`${ctx.task.name} ${c.port}/${c.protocol}: retrying ${mismatched.join(', ')}`);
        // One retry for the stray lost probe on a loaded 2-core machine (all of them in the VM).
        await Promise.all(
          mismatched.map(async (pair) => {
            const [from, to] = pair.split('→') as [string, string];
            const src = pods.get(from)!;
            const r =
              c.protocol === 'SCTP'
                ? await src.sctpProbe(pods.get(to)!.ip, c.port, 1500 * SLOW)
                : await src.probe(c.protocol as 'TCP', pods.get(to)!.ip, c.port, 1500 * SLOW);
            probed[i]!.set(pair, r.ok ? 'allow' : 'deny');
          }),
        );
      }
      const traced = await traceMatrix(fx, c.port, c.protocol);
      const label = `${c.port}/${c.protocol}`;
      const got = formatMatrix(fx, probed[i]!);
      const want = formatMatrix(fx, withLoopback[i]!);
      if (got !== want) {
        console.log(`${ctx.task.name} ${label}\nexpected:\n${want}\nprobed:\n${got}`);
        await explain([...probed[i]!].filter(([k, v]) => withLoopback[i]!.get(k) !== v).map(([k]) => k));
      }
      expect(got, `probed ${label}`).toBe(want);
      // `weft policy trace` agrees with the expectation, and so with what was probed (loopback aside).
      const tracedText = formatMatrix(fx, traced);
      const expectedText = formatMatrix(fx, expected[i]!);
      if (tracedText !== expectedText)
        console.log(`${ctx.task.name} ${label}\nexpected:\n${expectedText}\ntraced:\n${tracedText}`);
      expect(tracedText, `trace ${label}`).toBe(expectedText);
    }
  }

  /** For a failure: the datapath's view of the pairs that differ (policy entries, drops). */
  async function explain(pairs: string[]): Promise<void> {
    const endpoints = await api.listEndpoints();
    const idOf = (key: string) => endpoints.find((e) => e.pod === key);
    for (const pair of pairs.slice(0, 4)) {
      const [from, to] = pair.split('→') as [string, string];
      const src = idOf(from);
      const dst = idOf(to);
      console.log(
        `${pair}: source endpoint ${src?.endpointId} identity ${src?.identity}, destination ${dst?.endpointId} identity ${dst?.identity}`,
      );
      for (const key of [from, to]) {
        const entries = await api.bpfPolicy(key).catch((e: Error) => e.message);
        console.log(`bpf policy of ${key}: ${JSON.stringify(entries)}`);
      }
    }
    const drops = [];
    for await (const e of api.observe({ last: 20, type: 'drop' })) drops.push(e);
    console.log(
      `last drops: ${drops.map((d) => `${d.source}:${d.sourcePort}->${d.destination}:${d.destinationPort} ${d.reason} ep ${d.endpointId} peer ${d.peerIdentity} ${d.direction}`).join('\n')}`,
    );
  }

  const toX: Expect = (_f, t) => (ns(t) === 'x' ? 'deny' : undefined);

  it('allows everything with no policy', async (ctx) => {
    privileged(ctx);
    requireCommands(ctx, 'nsenter', 'ip');
    await setPolicies([]);
    await verify(ctx, [
      { port: 80, protocol: 'TCP', expect: () => undefined },
      { port: 81, protocol: 'UDP', expect: () => undefined },
      { port: 80, protocol: 'SCTP', expect: () => undefined },
    ]);
  });

  it('default-deny ingress isolates the namespace for ingress only', async (ctx) => {
    privileged(ctx);
    await setPolicies([np('x', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] })]);
    await verify(ctx, [
      { port: 80, protocol: 'TCP', expect: toX },
      { port: 81, protocol: 'UDP', expect: toX },
      { port: 81, protocol: 'SCTP', expect: toX },
    ]);
  });

  it('default-deny all isolates the namespace both ways', async (ctx) => {
    privileged(ctx);
    await setPolicies([np('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] })]);
    const e: Expect = (f, t) => (ns(f) === 'x' || ns(t) === 'x' ? 'deny' : undefined);
    await verify(ctx, [
      { port: 80, protocol: 'TCP', expect: e },
      { port: 80, protocol: 'UDP', expect: e },
    ]);
  });

  it('podSelector with matchExpressions', async (ctx) => {
    privileged(ctx);
    await setPolicies([
      np('x', 'expr', {
        podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['a'] }] },
        ingress: [
          {
            from: [
              { podSelector: { matchExpressions: [{ key: 'pod', operator: 'NotIn', values: ['a', 'c'] }] } },
            ],
          },
        ],
      }),
    ]);
    await verify(ctx, [
      {
        port: 80,
        protocol: 'TCP',
        expect: (f, t) => (t === 'x/a' ? (f === 'x/b' ? 'allow' : 'deny') : undefined),
      },
    ]);
  });

  it('namespaceSelector (pods of other namespaces; the own one is not implied)', async (ctx) => {
    privileged(ctx);
    await setPolicies([
      np('x', 'from-y', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          {
            from: [
              { namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'In', values: ['y'] }] } },
            ],
          },
        ],
      }),
    ]);
    await verify(ctx, [
      {
        port: 80,
        protocol: 'TCP',
        expect: (f, t) => (t === 'x/a' ? (ns(f) === 'y' ? 'allow' : 'deny') : undefined),
      },
    ]);
  });

  it('peer AND (podSelector and namespaceSelector in one peer) vs OR (two peers)', async (ctx) => {
    privileged(ctx);
    await setPolicies([
      np('x', 'and', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          {
            from: [
              { namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } },
            ],
          },
        ],
      }),
      np('x', 'or', {
        podSelector: { matchLabels: { pod: 'c' } },
        ingress: [
          {
            from: [
              { namespaceSelector: { matchLabels: { ns: 'y' } } },
              { podSelector: { matchLabels: { pod: 'b' } } },
            ],
          },
        ],
      }),
    ]);
    await verify(ctx, [
      {
        port: 80,
        protocol: 'TCP',
        expect: (f, t) => {
          if (t === 'x/a') return f === 'y/b' ? 'allow' : 'deny';
          if (t === 'x/c') return ns(f) === 'y' || f === 'x/b' ? 'allow' : 'deny';
          return undefined;
        },
      },
    ]);
  });

  it('ports: only the listed port and protocol', async (ctx) => {
    privileged(ctx);
    await setPolicies([
      np('x', 'port-81', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          {
            from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }],
            ports: [{ port: 81, protocol: 'TCP' }],
          },
        ],
      }),
    ]);
    const toA: Expect = (_f, t) => (t === 'x/a' ? 'deny' : undefined);
    await verify(ctx, [
      { port: 80, protocol: 'TCP', expect: toA },
      {
        port: 81,
        protocol: 'TCP',
        expect: (f, t) => (t === 'x/a' ? (ns(f) === 'y' ? 'allow' : 'deny') : undefined),
      },
      { port: 81, protocol: 'UDP', expect: toA },
    ]);
  });

  it('named ports resolve against the selected pod', async (ctx) => {
    privileged(ctx);
    await setPolicies([
      np('x', 'named', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          {
            from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }],
            ports: [{ port: netpolPortName(81, 'UDP'), protocol: 'UDP' }],
          },
        ],
      }),
    ]);
    const toA: Expect = (_f, t) => (t === 'x/a' ? 'deny' : undefined);
    await verify(ctx, [
      {
        port: 81,
        protocol: 'UDP',
        expect: (f, t) => (t === 'x/a' ? (ns(f) === 'y' ? 'allow' : 'deny') : undefined),
      },
      { port: 80, protocol: 'UDP', expect: toA },
      { port: 81, protocol: 'TCP', expect: toA },
    ]);
  });

  it('client-side egress deny wins over a server-side allow', async (ctx) => {
    privileged(ctx);
    await setPolicies([
      np('x', 'client-egress', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }],
      }),
      np('x', 'server-allows-all', { podSelector: { matchLabels: { pod: 'b' } }, ingress: [{}] }),
    ]);
    await verify(ctx, [
      {
        port: 80,
        protocol: 'TCP',
        expect: (f, t) => (f === 'x/a' ? (ns(t) === 'y' ? 'allow' : 'deny') : undefined),
      },
    ]);
  });

  it('any port on one protocol', async (ctx) => {
    privileged(ctx);
    await setPolicies([
      np('x', 'udp-only', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ ports: [{ protocol: 'UDP' }] }],
      }),
    ]);
    const toA: Expect = (_f, t) => (t === 'x/a' ? 'deny' : undefined);
    await verify(ctx, [
      { port: 80, protocol: 'UDP', expect: () => undefined },
      { port: 81, protocol: 'UDP', expect: () => undefined },
      { port: 80, protocol: 'TCP', expect: toA },
      { port: 80, protocol: 'SCTP', expect: toA },
    ]);
  });

  it('ipBlock with except, the except matching a pod address', async (ctx) => {
    privileged(ctx);
    // All of the pods' range except y/b's address, with host bits set as upstream writes it.
    await setPolicies([
      np('x', 'egress-cidr', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ ipBlock: { cidr: `${FX.ip('y/b')}/16`, except: [`${FX.ip('y/b')}/32`] } }] }],
      }),
    ]);
    await verify(ctx, [
      { port: 80, protocol: 'TCP', expect: (f, t) => (f === 'x/a' && t === 'y/b' ? 'deny' : undefined) },
      { port: 81, protocol: 'UDP', expect: (f, t) => (f === 'x/a' && t === 'y/b' ? 'deny' : undefined) },
    ]);
  });

  it('ingress and egress together; replies are never blocked', async (ctx) => {
    privileged(ctx);
    await setPolicies([
      np('x', 'both', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }],
        egress: [{ to: [{ namespaceSelector: { matchLabels: { ns: 'z' } } }] }],
      }),
    ]);
    const e: Expect = (f, t) => {
      if (t === 'x/a') return ns(f) === 'y' ? 'allow' : 'deny';
      if (f === 'x/a') return ns(t) === 'z' ? 'allow' : 'deny';
      return undefined;
    };
    await verify(ctx, [
      { port: 80, protocol: 'TCP', expect: e },
      { port: 81, protocol: 'UDP', expect: e },
    ]);
  });

  it('endPort ranges', async (ctx) => {
    privileged(ctx);
    await setPolicies([
      np('x', 'range', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ ports: [{ protocol: 'TCP', port: 81, endPort: 85 }] }],
      }),
    ]);
    await verify(ctx, [
      { port: 80, protocol: 'TCP', expect: (_f, t) => (t === 'x/a' ? 'deny' : undefined) },
      { port: 81, protocol: 'TCP', expect: () => undefined },
    ]);
  });

  it('Cilium policy: deny wins over a broader allow', async (ctx) => {
    privileged(ctx);
    await setPolicies([
      JSON.stringify({
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumNetworkPolicy',
        metadata: { name: 'deny-yb', namespace: 'x' },
        spec: {
          endpointSelector: { matchLabels: { pod: 'a' } },
          ingress: [{ fromEntities: ['cluster'] }],
          ingressDeny: [
            { fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'y', pod: 'b' } }] },
          ],
        },
      }),
    ]);
    await verify(ctx, [
      { port: 80, protocol: 'TCP', expect: (f, t) => (t === 'x/a' && f === 'y/b' ? 'deny' : undefined) },
    ]);
  });

  it('label updates: a pod that gains the selected label is allowed (new identity in the maps)', async (ctx) => {
    privileged(ctx);
    await setPolicies([
      np('x', 'from-clients', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } }, namespaceSelector: {} }] }],
      }),
    ]);
    const before = (await api.listEndpoints()).find((e) => e.pod === 'z/c')!;
    await verify(ctx, [{ port: 80, protocol: 'TCP', expect: (_f, t) => (t === 'x/a' ? 'deny' : undefined) }]);
    await write({ 'cluster.yaml': clusterYaml({ 'z/c': { role: 'client' } }) });
    const after = (await api.listEndpoints()).find((e) => e.pod === 'z/c')!;
    expect(after.endpointId).toBe(before.endpointId);
    expect(after.identity).not.toBe(before.identity);
    expect(after.labels).toContain('k8s:role=client');
    await verify(ctx, [
      {
        port: 80,
        protocol: 'TCP',
        expect: (f, t) => (t === 'x/a' ? (f === 'z/c' ? 'allow' : 'deny') : undefined),
      },
    ]);
    await write({ 'cluster.yaml': clusterYaml() });
  });

  it('a namespace created after the policy', async (ctx) => {
    privileged(ctx);
    await setPolicies([
      np('x', 'from-team-new', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'new' } } }] }],
      }),
    ]);
    const toA = (f: string) => (ns(f) === 'w' ? 'allow' : 'deny');
    // w appears: its namespace and pods in the manifests, its pods registered as CNI ADD would.
    await write({
      'late.yaml': [
        namespaceYaml('w', { ns: 'w', team: 'new' }),
        ...['w/a', 'w/b', 'w/c'].map((k) => podYaml(FX4, k)),
      ].join('---\n'),
    });
    for (const key of ['w/a', 'w/b', 'w/c']) await api.registerEndpoint(pods.get(key)!.registration());
    await verify(
      ctx,
      [{ port: 80, protocol: 'TCP', expect: (f, t) => (t === 'x/a' ? toA(f) : undefined) }],
      FX4,
    );
    // Gone again (CNI DEL, then the objects): x/a is back to nobody.
    for (const key of ['w/a', 'w/b', 'w/c']) await api.removeEndpoint(pods.get(key)!.registration());
    await write({
      'late.yaml': null,
      'policy.yaml': np('x', 'from-team-new', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'new' } } }] }],
      }),
    });
    await verify(ctx, [{ port: 80, protocol: 'TCP', expect: (_f, t) => (t === 'x/a' ? 'deny' : undefined) }]);
  });

  it('policy deletion restores full reachability', async (ctx) => {
    privileged(ctx);
    await setPolicies([np('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] })]);
    await verify(ctx, [
      { port: 80, protocol: 'TCP', expect: (f, t) => (ns(f) === 'x' || ns(t) === 'x' ? 'deny' : undefined) },
    ]);
    await write({ 'policy.yaml': null, 'other.yaml': namespaceYaml('unused', {}) });
    expect((await api.listPolicies()).filter((p) => !p.name.startsWith('marker-'))).toEqual([]);
    await verify(ctx, [
      { port: 80, protocol: 'TCP', expect: () => undefined },
      { port: 81, protocol: 'UDP', expect: () => undefined },
    ]);
  });

  it('SCTP', async (ctx) => {
    privileged(ctx);
    if (!SCTP.ok) {
      console.log(`SKIPPED: SCTP reachability here: ${SCTP.reason} (netpol-sctp-vm runs it in the test VM)`);
      ctx.skip(SCTP.reason);
    }
    await setPolicies([
      np('x', 'sctp-80', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ ports: [{ protocol: 'SCTP', port: 80 }] }],
      }),
    ]);
    const toA: Expect = (_f, t) => (t === 'x/a' ? 'deny' : undefined);
    await verify(ctx, [
      { port: 80, protocol: 'SCTP', expect: () => undefined },
      { port: 81, protocol: 'SCTP', expect: toA },
      { port: 80, protocol: 'TCP', expect: toA },
    ]);
  });
});
