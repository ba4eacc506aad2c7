/*
 * What weft-cni leaves for an agent that was down, replayed by the real agent on a real
 * datapath: a queued deletion (detached and forgotten), a degraded registration (weft-cni's own
 * attachment with identity init is replaced by a proper one with the pod's identity and policy),
 * an unreadable entry (left in place, counted); then the same while the agent runs, and the GC of
 * endpoints whose netns is gone. Traffic checks show the adopted endpoint is really enforced.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient, attachmentId, queueWork, type EndpointRegistration } from '@weft/agent-api';
import { Datapath } from '@weft/datapath';
import { privileged } from '@weft/testkit';
import type { Agent } from './agent';
import { BPF_OBJECT_DIR } from './testing/agent-process';
import { startInProcessAgent } from './testing/in-process';
import { PodNetwork, testPinRoot, type NetPod } from './testing/pod-network';

const isRoot = process.getuid?.() === 0;
const MANIFESTS = `
apiVersion: v1
kind: Namespace
metadata: {name: q}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-from-a, namespace: q}
spec:
  podSelector: {matchLabels: {pod: b}}
  ingress: [{from: [{podSelector: {matchLabels: {pod: a}}}]}]
`;

describe('queue replay and endpoint GC', () => {
  let net: PodNetwork | undefined;
  let work: string;
  let pinRoot: string;
  let agent: Agent | undefined;
  let a: NetPod, b: NetPod, c: NetPod, d: NetPod;
  const inPod = (p: NetPod): EndpointRegistration =>
    p.registration({
      attachInPod: true,
      mode: 'eni',
      labels: { pod: p.name },
      hostIfname: undefined,
      hostIfindex: undefined,
    });

  beforeAll(async () => {
    if (!isRoot) return;
    work = mkdtempSync(join(tmpdir(), 'weft-agent-queue-'));
    mkdirSync(join(work, 'manifests'));
    writeFileSync(join(work, 'manifests', 'q.yaml'), MANIFESTS);
    pinRoot = testPinRoot('qr');
    net = new PodNetwork('qr');
    a = net.addPod('q/a', '10.62.0.10');
    b = net.addPod('q/b', '10.62.0.11');
    c = net.addPod('q/c', '10.62.0.12');
    d = net.addPod('q/d', '10.62.0.13');
    await Promise.all([a, b, c, d].map((p) => p.start({ tcp: [80] })));
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    if (pinRoot) Datapath.destroy({ pinRoot, stateDir: join(work, 'state', 'datapath') });
    net?.destroy();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const start = async () => {
    ({ agent } = await startInProcessAgent({ work, pinRoot, manifests: join(work, 'manifests') }));
    return new AgentClient({ socketPath: join(work, 'run', 'agent.sock') });
  };

  it('replays a queued deletion and adopts a degraded endpoint on start', async (ctx) => {
    privileged(ctx);
    let api = await start();
    const regA = await api.registerEndpoint(inPod(a));
    const regC = await api.registerEndpoint(inPod(c));
    expect((await c.tcp(b, 80)).ok).toBe(true); // no policy selects b as long as b is not an endpoint...
    await agent!.stop();
    agent = undefined;

    // The agent is down. weft-cni: DEL of c (queued), degraded ADD of b (attached by itself, queued).
    const queueDir = join(work, 'queue');
    queueWork(
      {
        kind: 'delete',
        containerId: c.containerId,
        ifname: 'eth0',
        network: 'weftnet',
        queuedAt: new Date().toISOString(),
      },
      queueDir,
    );
    const degradedEndpointId = 0x80001234;
    const dp = Datapath.open({
      pinRoot,
      stateDir: join(work, 'state', 'datapath'),
      objectDir: BPF_OBJECT_DIR,
    });
    dp.attachEndpoint({
      endpointId: degradedEndpointId,
      identity: 5,
      ips: [b.ip],
      pod: { netnsPath: b.netnsPath, ifname: 'eth0' },
    });
    dp.close();
    queueWork(
      { kind: 'register', registration: inPod(b), degradedEndpointId, queuedAt: new Date().toISOString() },
      queueDir,
    );
    writeFileSync(join(queueDir, 'junk.json'), '{"kind": "register", "registration": {"containerId": 1}}');
    expect((await c.tcp(b, 80)).ok).toBe(true); // degraded: identity init, nothing enforced yet

    api = await start();
    const status = await api.status();
    expect(status.queue).toEqual({ replayed: 2, pending: 1 });
    expect(readdirSync(queueDir)).toEqual(['junk.json']);
    const eps = await api.listEndpoints();
    expect(eps.map((e) => [e.pod, e.state]).sort()).toEqual([
      ['q/a', 'ready'],
      ['q/b', 'ready'],
    ]);
    expect(eps.find((e) => e.pod === 'q/a')!.endpointId).toBe(regA.endpointId);
    const epB = eps.find((e) => e.pod === 'q/b')!;
    expect(epB.endpointId).toBeLessThan(0x80000000);
    expect(epB.identity).toBeGreaterThanOrEqual(256);
    expect(epB.ingressEnforced).toBe(true);
    const records = Datapath.open({
      pinRoot,
      stateDir: join(work, 'state', 'datapath'),
      objectDir: BPF_OBJECT_DIR,
    });
    const ids = records
      .listEndpoints()
      .map((r) => r.endpointId)
      .sort((x, y) => x - y);
    records.close();
    expect(ids).toEqual([regA.endpointId, epB.endpointId].sort((x, y) => x - y));
    expect(ids).not.toContain(regC.endpointId);
    expect(ids).not.toContain(degradedEndpointId);
    // The adopted endpoint is policed: a (selected) gets in, c (now unmanaged: world) does not.
    expect((await a.tcp(b, 80)).ok).toBe(true);
    expect((await c.tcp(b, 80)).ok).toBe(false);
    const metrics = await api.metrics();
    expect(metrics).toMatch(/weft_agent_queue_replays_total\{kind="register",result="ok"\} 1/);
    expect(metrics).toMatch(/weft_agent_queue_replays_total\{kind="delete",result="ok"\} 1/);
    expect(metrics).toMatch(/weft_agent_queue_replays_total\{kind="register",result="invalid"\} 1/);
  });

  it('replays work queued while it runs, and collects endpoints whose netns is gone', async (ctx) => {
    privileged(ctx);
    const api = new AgentClient({ socketPath: join(work, 'run', 'agent.sock') });
    const regD = await api.registerEndpoint(inPod(d));
    queueWork(
      {
        kind: 'delete',
        containerId: a.containerId,
        ifname: 'eth0',
        network: 'weftnet',
        queuedAt: new Date().toISOString(),
      },
      join(work, 'queue'),
    );
    // d's pod is deleted without a CNI DEL (node crash, runtime bug): its netns goes away.
    d.stop();
    execFileSync('ip', ['netns', 'del', d.netns]);
    agent!.housekeeping();
    const eps = await api.listEndpoints();
    expect(eps.map((e) => e.pod)).toEqual(['q/b']);
    expect(eps.map((e) => e.attachmentId)).not.toContain(
      attachmentId({ containerId: d.containerId, ifname: 'eth0' }),
    );
    expect(regD.endpointId).toBeGreaterThan(0);
    // a is gone from the datapath too, so b's policy no longer knows it: a is world now.
    expect((await a.tcp(b, 80)).ok).toBe(false);
  });
});
