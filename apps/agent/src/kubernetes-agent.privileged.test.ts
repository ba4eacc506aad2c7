/*
 * The bundled weft-agent binary with `--kubeconfig` against the list/watch EMULATOR (there is no
 * kube-apiserver here): pods of its node, namespaces and policies come from the API server, a
 * registered endpoint gets the API pod's labels and named ports, a policy created in the API
 * reaches the kernel and is enforced on real traffic, and deleting it opens the flow again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Datapath } from '@weft/datapath';
import { privileged } from '@weft/testkit';
import { AgentProcess, BPF_OBJECT_DIR, bundleAgent } from './testing/agent-process';
import { KubeApiserverEmulator } from './testing/kube-apiserver-emulator';
import { PodNetwork, testPinRoot, type NetPod } from './testing/pod-network';

const isRoot = process.getuid?.() === 0;

describe('weft-agent with the Kubernetes source (emulated API server)', () => {
  let work: string;
  let pinRoot: string;
  let emu: KubeApiserverEmulator;
  let agent: AgentProcess | undefined;
  let net: PodNetwork | undefined;
  let web: NetPod, client: NetPod;

  beforeAll(async () => {
    if (!isRoot) return;
    work = mkdtempSync(join(tmpdir(), 'weft-agent-kube-'));
    pinRoot = testPinRoot('ka');
    emu = new KubeApiserverEmulator({ token: 't0ken', bookmarkIntervalMs: 200 });
    await emu.start();
    emu.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { team: 'shop' } } });
    for (const [name, app, ip] of [
      ['web', 'web', '10.65.0.10'],
      ['client', 'client', '10.65.0.11'],
    ] as const)
      emu.apply({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: 'shop', labels: { app } },
        spec: {
          nodeName: 'node-k',
          containers: [{ name: 'c', image: 'x', ports: [{ name: 'http', containerPort: 80 }] }],
        },
        status: { podIP: ip },
      });
    // Another node's pod: not watched by this agent (fieldSelector).
    emu.apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'far', namespace: 'shop' },
      spec: { nodeName: 'node-other' },
    });
    net = new PodNetwork('ka');
    web = net.addPod('shop/web', '10.65.0.10');
    client = net.addPod('shop/client', '10.65.0.11');
    await Promise.all([web.start({ tcp: [80] }), client.start({ tcp: [80] })]);
    const socketPath = join(work, 'agent.sock');
    agent = new AgentProcess({
      bundle: bundleAgent(join(work, 'bin')),
      socketPath,
      logFile: join(work, 'agent.log'),
      args: [
        ...['--kubeconfig', emu.writeKubeconfig(join(work, 'kubeconfig')), '--node-name', 'node-k'],
        ...['--socket', socketPath, '--state-dir', join(work, 'state'), '--queue-dir', join(work, 'queue')],
        ...['--pin-root', pinRoot, '--bpf-dir', BPF_OBJECT_DIR, '--log-level', 'debug'],
      ],
    });
  }, 60_000);

  afterAll(async () => {
    await agent?.kill('SIGKILL');
    if (pinRoot) Datapath.destroy({ pinRoot, stateDir: join(work, 'state', 'datapath') });
    await emu?.stop();
    net?.destroy();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('syncs from the API server and enforces a policy created there', async (ctx) => {
    privileged(ctx);
    const status = await agent!.start();
    expect(status).toMatchObject({ source: 'kubernetes', sourceSynced: true, ready: true });
    const api = agent!.client;
    // In-pod attach: the agent runs in the test's netns here, where the emulator listens.
    for (const p of [web, client])
      await api.registerEndpoint(
        p.registration({ attachInPod: true, mode: 'eni', hostIfname: undefined, hostIfindex: undefined }),
      );
    const eps = await api.listEndpoints();
    expect(eps.map((e) => e.pod).sort()).toEqual(['shop/client', 'shop/web']);
    expect(eps.find((e) => e.pod === 'shop/web')!.labels).toContain('k8s:app=web');
    expect((await client.tcp(web, 80)).ok).toBe(true);
    expect((await web.tcp(client, 80)).ok).toBe(true);

    emu.apply({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'web-from-nobody', namespace: 'shop' },
      spec: {
        podSelector: { matchLabels: { app: 'web' } },
        ingress: [{ from: [{ podSelector: { matchLabels: { app: 'admin' } } }], ports: [{ port: 'http' }] }],
      },
    });
    const until = async (what: string, cond: () => Promise<boolean>) => {
      const end = Date.now() + 5000;
      while (!(await cond())) {
        if (Date.now() > end) throw new Error(`timed out: ${what}\n${agent!.logTail()}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    };
    await until('policy', async () => (await api.listPolicies()).some((p) => p.name === 'web-from-nobody'));
    expect((await api.listPolicies())[0]!.selects).toEqual(['shop/web']);
    expect((await client.tcp(web, 80)).ok).toBe(false);
    expect((await web.tcp(client, 80)).ok).toBe(true);

    // The client becomes "admin" in the API: a label change, a new identity, allowed.
    emu.apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'client', namespace: 'shop', labels: { app: 'admin' } },
      spec: { nodeName: 'node-k', containers: [{ name: 'c', image: 'x' }] },
    });
    await until('admin label', async () =>
      (await api.listEndpoints()).some((e) => e.labels.includes('k8s:app=admin')),
    );
    expect((await client.tcp(web, 80)).ok).toBe(true);

    // A dropped watch connection, then the policy goes: the agent notices after reconnecting.
    emu.dropWatches();
    emu.delete('NetworkPolicy', 'web-from-nobody', 'shop');
    await until('deleted', async () => (await api.listPolicies()).length === 0);
    expect((await api.status()).sourceSynced).toBe(true);
  });
});
