/*
 * weft-agent killed with SIGKILL while a TCP connection streams between two pods, then started
 * again: the connection survives, policy holds while the agent is down (a denied flow stays
 * denied, an allowed one can still be opened), and the restarted agent restores the same
 * endpoint ids and identities without re-attaching anything new (same programs on the veths).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentUnavailableError } from '@weft/agent-api';
import { queryTc } from '@weft/bpf';
import { Datapath } from '@weft/datapath';
import { privileged, requireCommands } from '@weft/testkit';
import { AgentProcess, BPF_OBJECT_DIR, bundleAgent } from './testing/agent-process';
import { PodNetwork, testPinRoot, type NetPod } from './testing/pod-network';

const isRoot = process.getuid?.() === 0;

const MANIFESTS = `
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: shop}}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop, labels: {app: client}}
spec: {nodeName: node-r, containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: shop, labels: {app: server}}
spec: {nodeName: node-r, containers: [{name: c, image: x, ports: [{name: web, containerPort: 80}, {name: stream, containerPort: 9000}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: intruder, namespace: shop, labels: {app: intruder}}
spec: {nodeName: node-r, containers: [{name: c, image: x}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-from-client, namespace: shop}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: web}, {port: stream}]}]
`;

describe('weft-agent SIGKILL and restart with live traffic', () => {
  let net: PodNetwork | undefined;
  let work: string;
  let pinRoot: string;
  let agent: AgentProcess | undefined;
  let client: NetPod, server: NetPod, intruder: NetPod;
  let makeAgent: () => AgentProcess;

  beforeAll(async () => {
    if (!isRoot) return;
    work = mkdtempSync(join(tmpdir(), 'weft-agent-restart-'));
    pinRoot = testPinRoot('ar');
    const bundle = bundleAgent(join(work, 'bin'));
    writeFileSync(join(work, 'manifests.yaml'), MANIFESTS);
    net = new PodNetwork('ar');
    client = net.addPod('shop/client', '10.61.0.10');
    server = net.addPod('shop/server', '10.61.0.11');
    intruder = net.addPod('shop/intruder', '10.61.0.12');
    await Promise.all([
      client.start({ tcp: [80] }),
      server.start({ tcp: [80], stream: 9000 }),
      intruder.start({ tcp: [80] }),
    ]);
    const socketPath = join(work, 'run', 'agent.sock');
    makeAgent = () =>
      new AgentProcess({
        bundle,
        socketPath,
        netnsPath: net!.nodeNetnsPath,
        logFile: join(work, 'agent.log'),
        args: [
          '--manifests',
          work,
          '--node-name',
          'node-r',
          '--socket',
          socketPath,
          '--state-dir',
          join(work, 'state'),
          '--queue-dir',
          join(work, 'queue'),
          '--pin-root',
          pinRoot,
          '--bpf-dir',
          BPF_OBJECT_DIR,
          '--log-level',
          'debug',
        ],
      });
  }, 60_000);

  afterAll(async () => {
    await agent?.kill('SIGKILL');
    if (pinRoot) {
      // The datapath is left in place by the agent on purpose; the test removes it.
      try {
        Datapath.destroy({ pinRoot, stateDir: join(work, 'state', 'datapath') });
      } catch (err) {
        console.log(`datapath cleanup: ${(err as Error).message}`);
      }
    }
    net?.destroy();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('keeps the stream, the policy and the ids across a SIGKILL and a restart', async (ctx) => {
    privileged(ctx);
    requireCommands(ctx, 'nsenter', 'ip');
    agent = makeAgent();
    await agent.start();
    const api = agent.client;
    for (const pod of [client, server, intruder]) await api.registerEndpoint(pod.registration());
    const before = (await api.listEndpoints()).map((e) => [e.pod, e.endpointId, e.identity, e.state]);
    expect(before.every(([, , , state]) => state === 'ready')).toBe(true);
    const progs = () =>
      [client, server, intruder].map((p) =>
        ['ingress', 'egress'].map(
          (d) => queryTc(p.hostIf, d as 'ingress', { netns: net!.nodeNetnsPath }).progId,
        ),
      );

    expect((await client.tcp(server, 80)).data).toBe('hello from shop/server:80');
    expect((await intruder.tcp(server, 80)).ok).toBe(false);
    expect((await server.tcp(intruder, 80)).ok).toBe(true); // no policy selects the intruder

    expect((await client.stream(server, 9000, 's1')).ok).toBe(true);
    const bytes = async () => (await client.streamStat('s1')).bytes ?? 0;
    const grows = async () => {
      const a = await bytes();
      await new Promise((r) => setTimeout(r, 300));
      const s = await client.streamStat('s1');
      return s.ok && (s.bytes ?? 0) > a;
    };
    expect(await grows()).toBe(true);
    const progsBefore = progs();

    // 1. SIGKILL: no clean-up of any kind runs.
    expect((await agent.kill('SIGKILL')).signal).toBe('SIGKILL');
    await expect(api.status()).rejects.toBeInstanceOf(AgentUnavailableError);
    expect(await grows()).toBe(true);
    expect((await intruder.tcp(server, 80)).ok).toBe(false);
    expect((await client.tcp(server, 80)).ok).toBe(true);
    expect(progs()).toEqual(progsBefore);

    // 2. Restart (the stale socket file is replaced): same state, nothing re-made.
    agent = makeAgent();
    const status = await agent.start();
    expect(status).toMatchObject({ ready: true, endpoints: 3, source: 'manifests', sourceSynced: true });
    const after = (await api.listEndpoints()).map((e) => [e.pod, e.endpointId, e.identity, e.state]);
    expect(after).toEqual(before);
    expect(progs()).toEqual(progsBefore);
    expect(await grows()).toBe(true);
    const s = await client.streamStat('s1');
    expect(s).toMatchObject({ ok: true, closed: false });
    expect(s.error).toBeUndefined();
    expect((await intruder.tcp(server, 80)).ok).toBe(false);
    expect((await client.tcp(server, 80)).ok).toBe(true);

    // 3. The restarted agent is fully functional: a policy change still applies.
    writeFileSync(join(work, 'manifests.yaml'), MANIFESTS.replace('app: client}}}]', 'app: intruder}}}]'));
    const deadline = Date.now() + 5000;
    while ((await intruder.tcp(server, 80, 300)).ok === false && Date.now() < deadline) {
      /* until the edit is applied */
    }
    expect((await intruder.tcp(server, 80)).ok).toBe(true);
    expect((await client.tcp(server, 80)).ok).toBe(false);
    await client.streamClose('s1');
  }, 60_000);
});
