/*
 * The Kubernetes source with the real client library (@kubernetes/client-node informers) against
 * the list/watch EMULATOR in ../testing (there is no kube-apiserver here): initial list, watch
 * events, bookmarks, a forced 410 Gone and the relist it causes, and dropped connections.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../logger';
import { KubeApiserverEmulator, type EmulatorOptions } from '../testing/kube-apiserver-emulator';
import { KubernetesSource } from './kubernetes-source';
import type { SourceChange } from './source';

let dir: string;
let emu: KubeApiserverEmulator;
let source: KubernetesSource | undefined;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'weft-kube-'));
});
afterEach(async () => {
  await source?.stop();
  source = undefined;
  await emu?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const ns = (name: string, labels: Record<string, string> = { ns: name }) => ({
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name, labels, managedFields: [{ manager: 'kubectl' }] },
  spec: { finalizers: ['kubernetes'] },
  status: { phase: 'Active' },
});
const pod = (
  namespace: string,
  name: string,
  nodeName: string,
  labels: Record<string, string> = { pod: name },
) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace, labels },
  spec: {
    nodeName,
    containers: [
      { name: 'c', image: 'nginx', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] },
    ],
    restartPolicy: 'Always',
  },
  status: { phase: 'Running', podIP: '10.0.0.9', podIPs: [{ ip: '10.0.0.9' }] },
});
const netpol = (namespace: string, name: string, from = 'b') => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name, namespace, generation: 1 },
  spec: {
    podSelector: { matchLabels: { pod: 'a' } },
    policyTypes: ['Ingress'],
    ingress: [
      { from: [{ podSelector: { matchLabels: { pod: from } } }], ports: [{ port: 'http', protocol: 'TCP' }] },
    ],
  },
});
const cnp = {
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumNetworkPolicy',
  metadata: { name: 'c1', namespace: 'x' },
  spec: { endpointSelector: { matchLabels: { pod: 'a' } }, ingress: [{ fromEntities: ['cluster'] }] },
  status: { conditions: [] },
};
const ccnp = {
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumClusterwideNetworkPolicy',
  metadata: { name: 'cc1' },
  spec: { endpointSelector: {}, egress: [{ toEntities: ['world'] }] },
};

async function until(what: string, cond: () => boolean, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Starts the source; `state` folds every delivered batch into "what the agent has". */
async function startSource(options: EmulatorOptions = {}, seed: Record<string, unknown>[] = []) {
  emu = new KubeApiserverEmulator({ token: 'sekret', bookmarkIntervalMs: 100, ...options });
  await emu.start();
  for (const o of seed) emu.apply(o);
  const kubeconfig = emu.writeKubeconfig(join(dir, 'kubeconfig'));
  const batches: SourceChange[][] = [];
  let synced = false;
  source = new KubernetesSource({
    kubeconfig,
    nodeName: 'node-1',
    logger: silentLogger(),
    backoffBaseMs: 40,
    backoffMaxMs: 200,
  });
  await source.start({ apply: (b) => batches.push(b), synced: () => (synced = true) });
  await until('sync', () => synced);
  const state = () => {
    const out = new Map<string, unknown>();
    for (const b of batches)
      for (const c of b) {
        if (c.kind === 'Namespace') {
          if (c.op === 'upsert') out.set(`Namespace/${c.namespace.name}`, c.namespace);
          else out.delete(`Namespace/${c.name}`);
        } else if (c.kind === 'Pod') {
          if (c.op === 'upsert') out.set(`Pod/${c.pod.namespace}/${c.pod.name}`, c.pod);
          else out.delete(`Pod/${c.namespace}/${c.name}`);
        } else if (c.op === 'upsert')
          out.set(
            `${c.policy.kind}/${c.policy.metadata.namespace ? `${c.policy.metadata.namespace}/` : ''}${c.policy.metadata.name}`,
            c.policy,
          );
        else out.delete(c.key);
      }
    return out;
  };
  return { batches, state, keys: () => [...state().keys()].sort() };
}

describe('Kubernetes source (real client library, emulated API server)', () => {
  it('lists everything once, pods only of this node, and delivers it as the initial state', async () => {
    const t = await startSource({}, [
      ns('x'),
      ns('y'),
      pod('x', 'a', 'node-1'),
      pod('x', 'b', 'node-2'),
      pod('y', 'c', 'node-1'),
      netpol('x', 'allow-b'),
      cnp,
      ccnp,
    ]);
    expect(t.batches).toHaveLength(1); // one batch: the agent computes the full policy once
    expect(t.keys()).toEqual([
      'CiliumClusterwideNetworkPolicy/cc1',
      'CiliumNetworkPolicy/x/c1',
      'Namespace/x',
      'Namespace/y',
      'NetworkPolicy/x/allow-b',
      'Pod/x/a',
      'Pod/y/c',
    ]);
    expect(t.state().get('Pod/x/a')).toEqual({
      namespace: 'x',
      name: 'a',
      labels: { pod: 'a' },
      ips: ['10.0.0.9'],
      ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
      nodeName: 'node-1',
    });
    const podRequests = emu.requests.filter((r) => r.path === '/api/v1/pods');
    expect(podRequests.map((r) => r.query.fieldSelector)).toEqual(
      expect.arrayContaining(['spec.nodeName=node-1']),
    );
    expect(podRequests.every((r) => r.query.fieldSelector === 'spec.nodeName=node-1')).toBe(true);
    await until('watches', () => emu.openWatches() === 5);
    const watches = emu.requests.filter((r) => r.watch);
    expect(
      watches.every((r) => r.query.allowWatchBookmarks === 'true' && Number(r.query.resourceVersion) > 0),
    ).toBe(true);
  });

  it('delivers watch events: adds, label changes, deletes, a pod moving off the node', async () => {
    const t = await startSource({}, [ns('x'), pod('x', 'a', 'node-1'), netpol('x', 'p1')]);
    await until('watches', () => emu.openWatches() === 5);
    emu.apply(pod('x', 'b', 'node-1'));
    emu.apply(pod('x', 'a', 'node-1', { pod: 'a', tier: 'web' }));
    emu.apply(pod('x', 'other', 'node-2')); // not ours: never delivered
    emu.delete('NetworkPolicy', 'p1', 'x');
    emu.apply(netpol('x', 'p2'));
    emu.apply(ns('x', { ns: 'x', team: 'blue' }));
    await until('events', () => t.keys().join() === 'Namespace/x,NetworkPolicy/x/p2,Pod/x/a,Pod/x/b');
    expect(t.state().get('Pod/x/a')).toMatchObject({ labels: { pod: 'a', tier: 'web' } });
    expect(t.state().get('Namespace/x')).toEqual({ name: 'x', labels: { ns: 'x', team: 'blue' } });
    // The API server turns "no longer matches the field selector" into DELETED.
    emu.apply(pod('x', 'b', 'node-2'));
    await until('b gone', () => !t.state().has('Pod/x/b'));
  });

  it('keeps the previous version of an object that does not validate', async () => {
    const t = await startSource({}, [ns('x'), netpol('x', 'p1')]);
    await until('watches', () => emu.openWatches() === 5);
    const bad = netpol('x', 'p1');
    (bad.spec.ingress[0]!.ports[0] as Record<string, unknown>).endPort = 9; // endPort with a named port
    emu.apply(bad);
    emu.apply(ns('y'));
    await until('y', () => t.state().has('Namespace/y'));
    expect(t.state().get('NetworkPolicy/x/p1')).toMatchObject({
      spec: { ingress: [{ ports: [{ port: 'http' }] }] },
    });
  });

  it('resumes from bookmarks: after a compaction and a dropped connection, no relist is needed', async () => {
    const t = await startSource({}, [ns('x'), pod('x', 'a', 'node-1')]);
    await until('watches', () => emu.openWatches() === 5);
    // Writes elsewhere move the resourceVersion on; the pods watch sees only bookmarks.
    for (let i = 0; i < 5; i++) emu.apply(ns(`n${i}`));
    const target = emu.resourceVersion;
    await until('a bookmark at the latest version', () =>
      emu.bookmarksSent.some((b) => b.plural === 'pods' && b.resourceVersion >= target),
    );
    await new Promise((r) => setTimeout(r, 50)); // let the client read it
    const podLists = emu.count('pods', 'list');
    const podWatches = emu.count('pods', 'watch');
    emu.compact();
    expect(emu.dropWatches()).toBe(5);
    await until(
      'pods watch reopened',
      () => emu.count('pods', 'watch') > podWatches && emu.openWatches('pods') === 1,
    );
    const reopened = emu.requests.filter((r) => r.watch && r.path === '/api/v1/pods').at(-1)!;
    expect(Number(reopened.query.resourceVersion)).toBeGreaterThanOrEqual(target);
    expect(emu.count('pods', 'list')).toBe(podLists); // resumed, not relisted
    emu.apply(pod('x', 'late', 'node-1'));
    await until('late pod', () => t.state().has('Pod/x/late'));
  });

  it('relists after 410 Gone (too old resourceVersion), catching up on what it missed', async () => {
    // No bookmarks: the watches' resourceVersions stay where the initial list left them.
    const t = await startSource({ bookmarkIntervalMs: 0 }, [
      ns('x'),
      pod('x', 'a', 'node-1'),
      pod('x', 'b', 'node-1'),
    ]);
    await until('watches', () => emu.openWatches() === 5);
    const podLists = emu.count('pods', 'list');
    // A network failure, and meanwhile changes the client never sees as events, then compaction.
    emu.dropWatches();
    emu.delete('Pod', 'b', 'x');
    emu.apply(pod('x', 'c', 'node-1'));
    emu.apply(pod('x', 'a', 'node-1', { pod: 'a', v: '2' }));
    emu.compact();
    await until('relist', () => emu.count('pods', 'list') > podLists);
    expect(emu.requests.some((r) => r.watch && r.path === '/api/v1/pods' && r.status === 200)).toBe(true);
    await until(
      'caught up',
      () =>
        t
          .keys()
          .filter((k) => k.startsWith('Pod/'))
          .join() === 'Pod/x/a,Pod/x/c',
    );
    expect(t.state().get('Pod/x/a')).toMatchObject({ labels: { pod: 'a', v: '2' } });
    expect(source!.stats().find((s) => s.name === 'pods')!.lists).toBeGreaterThanOrEqual(2);
    // ...and keeps watching afterwards.
    await until('watching again', () => emu.openWatches('pods') === 1);
    emu.apply(pod('x', 'd', 'node-1'));
    await until('d', () => t.state().has('Pod/x/d'));
  });

  it('reconnects with backoff after dropped connections, and after the API server was unreachable', async () => {
    const t = await startSource({}, [ns('x')]);
    await until('watches', () => emu.openWatches() === 5);
    for (let round = 0; round < 3; round++) {
      emu.dropWatches();
      await until(`reconnect ${round}`, () => emu.openWatches() === 5);
      emu.apply(pod('x', `p${round}`, 'node-1'));
      await until(`p${round}`, () => t.state().has(`Pod/x/p${round}`));
    }
    expect(source!.stats().every((s) => s.restarts >= 1 || s.lists >= 1)).toBe(true);
    // The API server goes away; it comes back (same address) after etcd compacted past what the
    // client has seen: its watches get 410 and it relists.
    const port = Number(new URL(emu.url).port);
    await emu.stop();
    await new Promise((r) => setTimeout(r, 300));
    emu = new KubeApiserverEmulator({
      token: 'sekret',
      bookmarkIntervalMs: 100,
      initialResourceVersion: 50_000,
    });
    emu.apply(ns('x'));
    emu.apply(pod('x', 'fresh', 'node-1'));
    emu.compact();
    await emu.start(port);
    await until(
      'relisted against the new server',
      () =>
        t
          .keys()
          .filter((k) => k.startsWith('Pod/'))
          .join() === 'Pod/x/fresh',
      15000,
    );
  });

  it('syncs without the cilium.io CRDs (404 = none) and rejects nothing else', async () => {
    const t = await startSource({ ciliumCrds: false }, [ns('x'), netpol('x', 'p1')]);
    expect(t.keys()).toEqual(['Namespace/x', 'NetworkPolicy/x/p1']);
    expect(emu.requests.some((r) => r.path.startsWith('/apis/cilium.io') && r.status === 404)).toBe(true);
  });
});
