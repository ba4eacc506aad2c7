import { describe, expect, it } from 'vitest';
import { PolicyEngine } from './engine';
import { PolicyEngineError, PolicyValidationError } from './errors';
import { FIRST_LOCAL_IDENTITY, RESERVED_IDENTITY } from './identity';
import type { Pod } from './model';
import { buildNetpolFixture } from './netpol-fixture';
import { parseNetworkPolicy } from './parse-k8s';

function np(namespace: string, name: string, spec: Record<string, unknown>) {
  return parseNetworkPolicy({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace },
    spec,
  });
}

const allowFromB = np('x', 'allow-b', {
  podSelector: { matchLabels: { pod: 'a' } },
  ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
});

function setup(nodeName?: string) {
  const fx = buildNetpolFixture();
  const engine = new PolicyEngine(nodeName === undefined ? {} : { nodeName });
  const delta = engine.transaction((w) => {
    fx.namespaces.forEach((n) => w.upsertNamespace(n));
    fx.pods.forEach((p) =>
      w.upsertPod(nodeName === undefined ? p : { ...p, nodeName: p.namespace === 'x' ? nodeName : 'other' }),
    );
  });
  const pod = (key: string): Pod => fx.pods.find((p) => `${p.namespace}/${p.name}` === key)!;
  return { fx, engine, delta, pod };
}

describe('PolicyEngine endpoint handles', () => {
  it('hands back what was bound to each changed endpoint, before or after its pod is known', () => {
    const fx = buildNetpolFixture();
    const engine = new PolicyEngine<{ tag: string }>();
    engine.bindEndpoint('x/a', { tag: 'bound before the pod' });
    engine.transaction((w) => {
      fx.namespaces.forEach((n) => w.upsertNamespace(n));
      fx.pods.forEach((p) => w.upsertPod(p));
    });
    engine.bindEndpoint('x/b', { tag: 'bound after' });
    const delta = engine.upsertPolicy(allowFromB);
    const seen = new Map<string, string | undefined>();
    delta.forEachEndpoint((policy, change, handle, key) => {
      expect(delta.endpoints.get(key)).toBe(policy);
      expect(delta.changedPeers.get(key)).toBe(change);
      seen.set(key, handle?.tag);
    });
    expect(seen.size).toBe(delta.endpoints.size);
    expect(seen.get('x/a')).toBe('bound before the pod');
    // A policy selecting x/b: its handle comes back; once unbound, none does.
    const selectB = np('x', 'select-b', { podSelector: { matchLabels: { pod: 'b' } }, ingress: [{}] });
    const tags: (string | undefined)[] = [];
    engine.upsertPolicy(selectB).forEachEndpoint((_p, _c, handle, key) => {
      if (key === 'x/b') tags.push(handle?.tag);
    });
    engine.bindEndpoint('x/b', undefined);
    engine.deletePolicy(`${selectB.kind}/x/select-b`).forEachEndpoint((_p, _c, handle, key) => {
      if (key === 'x/b') tags.push(handle?.tag);
    });
    expect(tags).toEqual(['bound after', undefined]);
  });
});

describe('PolicyEngine incremental updates', () => {
  it('reports every endpoint, identity and ipcache entry on the first load', () => {
    const { engine, delta } = setup();
    expect(delta.endpoints.size).toBe(9);
    expect(delta.endpointIdentities.size).toBe(9);
    expect(delta.identities.added).toHaveLength(9);
    expect(delta.ipcache.upserted.map((e) => e.cidr).sort()).toContain('0.0.0.0/0');
    expect(delta.ipcache.upserted).toHaveLength(11); // 9 pods + two world prefixes
    expect(engine.ipcache().find((e) => e.cidr === '::/0')!.identity).toBe(RESERVED_IDENTITY.world);
    for (const p of delta.endpoints.values())
      expect(p).toEqual({ ingressEnforced: false, egressEnforced: false, entries: [] });
    expect(Math.min(...delta.identities.added)).toBeGreaterThanOrEqual(FIRST_LOCAL_IDENTITY);
  });

  it('a policy change touches only the endpoints it selects', () => {
    const { engine } = setup();
    const d = engine.upsertPolicy(allowFromB);
    expect([...d.endpoints.keys()]).toEqual(['x/a']);
    expect(d.endpoints.get('x/a')).toEqual({
      ingressEnforced: true,
      egressEnforced: false,
      entries: [
        {
          identity: engine.identityOf('x/b'),
          protocol: 0,
          portLow: 0,
          portHigh: 0,
          direction: 'ingress',
          verdict: 'allow',
        },
      ],
    });
    expect(d.ipcache).toEqual({ upserted: [], removed: [] });
    // Re-applying the same policy changes nothing.
    expect(engine.upsertPolicy(allowFromB).endpoints.size).toBe(0);
  });

  it('a label change updates the peer identity in the affected endpoints only', () => {
    const { engine, pod } = setup();
    engine.upsertPolicy(allowFromB);
    const oldB = engine.identityOf('x/b')!;
    const d = engine.upsertPod({ ...pod('x/b'), labels: { pod: 'b', role: 'new' } });
    const newB = engine.identityOf('x/b')!;
    expect(newB).not.toBe(oldB);
    expect([...d.endpoints.keys()].sort()).toEqual(['x/a']);
    expect(d.endpoints.get('x/a')!.entries.map((e) => e.identity)).toEqual([newB]);
    expect(d.endpointIdentities).toEqual(new Map([['x/b', newB]]));
    expect(d.ipcache.upserted).toEqual([{ cidr: `${pod('x/b').ips[0]}/32`, identity: newB }]);
    expect(d.identities).toEqual({ added: [newB], removed: [oldB] });
    // A pod nobody's policy mentions: only its own identity and ipcache entry change.
    const d2 = engine.upsertPod({ ...pod('z/c'), labels: { pod: 'c', role: 'new' } });
    expect(d2.endpoints.size).toBe(0);
    expect([...d2.endpointIdentities.keys()]).toEqual(['z/c']);
    expect(d2.ipcache.upserted).toHaveLength(1);
  });

  it('pods sharing a label set share one identity', () => {
    const { engine, pod } = setup();
    engine.upsertPod({ ...pod('x/a'), name: 'a2', ips: ['10.42.1.99'] });
    expect(engine.identityOf('x/a2')).toBe(engine.identityOf('x/a'));
    expect(engine.identityOf('x/a')).not.toBe(engine.identityOf('y/a')); // namespace is part of the identity
    const d = engine.deletePod('x', 'a2');
    expect(d.removedEndpoints).toEqual(['x/a2']);
    expect(d.ipcache.removed).toEqual(['10.42.1.99/32']);
    expect(d.identities).toEqual({ added: [], removed: [] }); // x/a still holds it
  });

  it('deleting a pod removes its endpoint, address and (last) identity', () => {
    const { engine } = setup();
    engine.upsertPolicy(allowFromB);
    const b = engine.identityOf('x/b')!;
    const d = engine.deletePod('x', 'b');
    expect(d.removedEndpoints).toEqual(['x/b']);
    expect(d.ipcache.removed).toEqual(['10.42.1.11/32']);
    expect(d.identities.removed).toEqual([b]);
    expect(d.endpoints.get('x/a')!.entries).toEqual([]);
    expect(engine.endpointPolicy('x/b')).toBeUndefined();
  });

  it('egress named ports follow the destination pod’s container ports', () => {
    const { engine, pod } = setup();
    engine.upsertPolicy(
      np('x', 'to-web', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [
          {
            to: [
              { namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } },
            ],
            ports: [{ port: 'web' }],
          },
        ],
      }),
    );
    expect(engine.endpointPolicy('x/a')!.entries).toEqual([]);
    const d = engine.upsertPod({
      ...pod('y/b'),
      ports: [{ name: 'web', containerPort: 8443, protocol: 'TCP' }],
    });
    expect(d.endpoints.get('x/a')!.entries).toEqual([
      {
        identity: engine.identityOf('y/b'),
        protocol: 6,
        portLow: 8443,
        portHigh: 8443,
        direction: 'egress',
        verdict: 'allow',
      },
    ]);
    expect(engine.trace('x/a', 'y/b', 8443, 'TCP').verdict).toBe('allow');
    expect(engine.trace('x/a', 'y/b', 80, 'TCP').verdict).toBe('deny');
  });

  it('ingress named ports are per endpoint, even within one identity', () => {
    const { engine, pod } = setup();
    engine.upsertPod({
      ...pod('x/a'),
      name: 'a2',
      ips: ['10.42.1.99'],
      ports: [{ name: 'serve-80-tcp', containerPort: 8080, protocol: 'TCP' }],
    });
    engine.upsertPolicy(
      np('x', 'named', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ ports: [{ port: 'serve-80-tcp' }] }],
      }),
    );
    expect(engine.endpointPolicy('x/a')!.entries.map((e) => e.portLow)).toEqual([80]);
    expect(engine.endpointPolicy('x/a2')!.entries.map((e) => e.portLow)).toEqual([8080]);
  });

  it('identities survive a restart through the persisted snapshot', () => {
    const { engine, fx } = setup();
    engine.upsertPod({ ...fx.pods[0]!, name: 'extra', labels: { pod: 'zzz' }, ips: ['10.42.9.9'] });
    const snapshot = engine.identitySnapshot();
    // Same objects, another order: the same numbers.
    const again = new PolicyEngine({ identities: JSON.parse(JSON.stringify(snapshot)) });
    again.transaction((w) => {
      [...fx.pods].reverse().forEach((p) => w.upsertPod(p));
      fx.namespaces.forEach((n) => w.upsertNamespace(n));
    });
    for (const key of fx.podKeys) expect(again.identityOf(key)).toBe(engine.identityOf(key));
    // Without the snapshot the order decides.
    const fresh = new PolicyEngine();
    fresh.transaction((w) => {
      fx.namespaces.forEach((n) => w.upsertNamespace(n));
      [...fx.pods].reverse().forEach((p) => w.upsertPod(p));
    });
    expect(fresh.identityOf('x/a')).not.toBe(engine.identityOf('x/a'));
  });

  it('only pods on the local node are endpoints; remote pods still get ipcache entries', () => {
    const { engine, delta } = setup('node-1');
    expect([...delta.endpoints.keys()].sort()).toEqual(['x/a', 'x/b', 'x/c']);
    expect(delta.ipcache.upserted).toHaveLength(11);
    engine.upsertPolicy(np('y', 'deny', { podSelector: {} }));
    expect(engine.endpointPolicy('y/a')).toBeUndefined();
    expect(engine.trace('x/a', 'y/a', 80, 'TCP').verdict).toBe('deny'); // trace answers for the cluster
  });

  it('host-network pods have no identity and are not endpoints', () => {
    const { engine, pod } = setup();
    const d = engine.upsertPod({ ...pod('x/c'), hostNetwork: true });
    expect(d.removedEndpoints).toEqual(['x/c']);
    expect(d.ipcache.removed).toEqual(['10.42.1.12/32']);
    expect(engine.identityOf('x/c')).toBeUndefined();
  });

  it('namespace label changes and deletion re-identify its pods', () => {
    const { engine } = setup();
    const before = engine.identityOf('y/a');
    const d = engine.upsertNamespace({ name: 'y', labels: { ns: 'y', env: 'prod' } });
    expect([...d.endpointIdentities.keys()].sort()).toEqual(['y/a', 'y/b', 'y/c']);
    expect(engine.identityOf('y/a')).not.toBe(before);
    expect(engine.identityLabels(engine.identityOf('y/a')!)).toContain(
      'k8s:io.cilium.k8s.namespace.labels.env=prod',
    );
    engine.deleteNamespace('y');
    expect(engine.identityLabels(engine.identityOf('y/a')!)).not.toContain(
      'k8s:io.cilium.k8s.namespace.labels.env=prod',
    );
    expect(engine.identityLabels(engine.identityOf('y/a')!)).toContain('k8s:io.kubernetes.pod.namespace=y');
  });

  it('ipBlock prefixes give pods and outside addresses CIDR identities, and clean up after deletion', () => {
    const { engine } = setup();
    const policy = np('x', 'egress-cidr', {
      podSelector: { matchLabels: { pod: 'a' } },
      policyTypes: ['Egress'],
      egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.42.0.0/16', '192.0.2.0/24'] } }] }],
    });
    const before = engine.identityOf('y/a');
    const d = engine.upsertPolicy(policy);
    const prefixes = d.ipcache.upserted.map((e) => e.cidr).filter((c) => !c.endsWith('/32'));
    expect(prefixes.sort()).toEqual(['10.42.0.0/16', '192.0.2.0/24']);
    // Pods inside an ipBlock prefix are re-identified with its cidr: label (9 pod entries move).
    expect(d.ipcache.upserted).toHaveLength(11);
    expect(engine.identityOf('y/a')).not.toBe(before);
    expect(engine.identityLabels(engine.identityOf('y/a')!)).toEqual(
      expect.arrayContaining(['cidr:0.0.0.0/0', 'cidr:10.42.0.0/16']),
    );
    expect(engine.identityLabels(RESERVED_IDENTITY.world)).toEqual(['cidr:0.0.0.0/0', 'reserved:world']);
    expect(engine.trace('x/a', '198.51.100.1', 443, 'TCP').verdict).toBe('allow');
    expect(engine.trace('x/a', '192.0.2.1', 443, 'TCP').verdict).toBe('deny');
    expect(engine.trace('x/a', '10.42.200.1', 443, 'TCP').verdict).toBe('deny');
    expect(engine.trace('x/a', 'y/a', 443, 'TCP').verdict).toBe('deny');
    const gone = engine.deletePolicy('NetworkPolicy/x/egress-cidr');
    expect(gone.ipcache.removed.sort()).toEqual(['10.42.0.0/16', '192.0.2.0/24']);
    expect(engine.identityOf('y/a')).toBe(before); // back to the plain label set's number
    expect(engine.identityLabels(RESERVED_IDENTITY.world)).toEqual(['reserved:world']);
    expect(engine.endpointPolicy('x/a')).toEqual({
      ingressEnforced: false,
      egressEnforced: false,
      entries: [],
    });
  });

  it('policy status counts selected endpoints', () => {
    const { engine } = setup();
    engine.upsertPolicy(np('x', 'all', { podSelector: {} }));
    expect(engine.policyStatus()).toEqual([
      {
        key: 'NetworkPolicy/x/all',
        kind: 'NetworkPolicy',
        namespace: 'x',
        selectedEndpoints: 3,
        warnings: [],
      },
    ]);
    expect(engine.endpointStatus('x/a')!.policies).toEqual(['NetworkPolicy/x/all']);
  });

  it('rejects bad input and unknown trace endpoints', () => {
    const { engine, pod } = setup();
    expect(() => engine.upsertPod({ ...pod('x/a'), ips: ['10.0.0.256'] })).toThrow(PolicyValidationError);
    expect(() => engine.trace('x/nope', 'x/a', 80, 'TCP')).toThrow(PolicyEngineError);
    expect(() => engine.trace('x/a', 'x/b', 70000, 'TCP')).toThrow(/port/);
  });

  it('a transaction applies a pod before its namespace exists and batches the delta', () => {
    const engine = new PolicyEngine();
    const d = engine.transaction((w) => {
      w.upsertPod({ namespace: 'n', name: 'p', labels: {}, ips: ['10.1.0.1'], ports: [] });
      w.upsertNamespace({ name: 'n', labels: { team: 't' } });
      w.upsertPolicy(np('n', 'deny', { podSelector: {} }));
    });
    expect(d.endpoints.get('n/p')).toEqual({ ingressEnforced: true, egressEnforced: false, entries: [] });
    expect(engine.identityLabels(engine.identityOf('n/p')!)).toContain(
      'k8s:io.cilium.k8s.namespace.labels.team=t',
    );
  });

  it('trace explains default deny and unselected pods', () => {
    const { engine } = setup();
    engine.upsertPolicy(allowFromB);
    const t = engine.trace('x/c', 'x/a', 80, 'TCP');
    expect(t.verdict).toBe('deny');
    expect(t.egress.reason).toBe('no-policy-selects');
    expect(t.ingress).toMatchObject({ reason: 'default-deny', enforcedBy: ['NetworkPolicy/x/allow-b'] });
    expect(t.explanation).toMatch(/default deny, selected for ingress by NetworkPolicy\/x\/allow-b/);
    const ok = engine.trace('x/b', '10.42.1.10', 80, 'TCP');
    expect(ok.to).toEqual({ name: 'x/a', ip: '10.42.1.10', pod: 'x/a' });
    expect(ok.ingress.matches).toEqual([
      {
        policy: 'NetworkPolicy/x/allow-b',
        rule: 'spec.ingress[0]',
        peer: 'spec.ingress[0].from[0]',
        verdict: 'allow',
        l7NotEnforced: false,
      },
    ]);
  });
});

describe('identity release delay', () => {
  function lingeringSetup() {
    let clock = 1_000;
    const fx = buildNetpolFixture();
    const engine = new PolicyEngine({ identityReleaseDelayMs: 60_000, now: () => clock });
    engine.transaction((w) => {
      fx.namespaces.forEach((n) => w.upsertNamespace(n));
      fx.pods.forEach((p) => w.upsertPod(p));
      w.upsertPolicy(allowFromB);
    });
    const pod = (key: string): Pod => fx.pods.find((p) => `${p.namespace}/${p.name}` === key)!;
    return { engine, pod, advance: (ms: number) => (clock += ms) };
  }

  it('keeps a relabelled pod identity until the delay passes; then its entries go everywhere', () => {
    const { engine, pod, advance } = lingeringSetup();
    const b = engine.identityOf('x/b')!;
    expect(engine.endpointPolicy('x/a')!.entries.map((e) => e.identity)).toEqual([b]);

    // x/b is relabelled out of the policy's peers: x/a's entry for the old identity stays (no pod
    // carries it, so nothing matches it).
    const moved = engine.upsertPod({ ...pod('x/b'), labels: { pod: 'b2' } });
    expect(moved.endpoints.has('x/a')).toBe(false);
    expect(moved.identities.removed).toEqual([]);
    expect(engine.identityLabels(b)).toBeDefined();
    expect(engine.ipcache().filter((e) => e.identity === b)).toEqual([]);
    expect(engine.nextIdentityRelease()).toBe(61_000);

    expect(engine.releaseExpiredIdentities().identities.removed).toEqual([]); // not yet due
    advance(60_000);
    const released = engine.releaseExpiredIdentities();
    expect(released.identities.removed).toEqual([b]);
    expect(engine.identityLabels(b)).toBeUndefined();
    expect(released.endpoints.get('x/a')!.entries).toEqual([]);
    expect(engine.nextIdentityRelease()).toBeUndefined();
  });

  it('a pod taking a lingering identity back keeps its number and changes no other endpoint', () => {
    const { engine, pod, advance } = lingeringSetup();
    const b = engine.identityOf('x/b')!;
    engine.upsertPod({ ...pod('x/b'), labels: { pod: 'b2' } });
    const back = engine.upsertPod(pod('x/b'));
    expect(engine.identityOf('x/b')).toBe(b);
    expect(back.endpoints.has('x/a')).toBe(false);
    expect(back.ipcache.upserted).toEqual([{ cidr: `${pod('x/b').ips[0]}/32`, identity: b }]);
    // The pod=b2 identity lingers now; b is held by its pod and outlives the delay.
    advance(60_000);
    engine.releaseExpiredIdentities();
    expect(engine.identityLabels(b)).toBeDefined();
    expect(engine.identityOf('x/b')).toBe(b);
  });

  it('a deleted pod leaves its identity lingering too; without a delay it goes at once', () => {
    const { engine, advance } = lingeringSetup();
    const c = engine.identityOf('x/c')!;
    engine.deletePod('x', 'c');
    expect(engine.identityLabels(c)).toBeDefined();
    advance(60_000);
    expect(engine.releaseExpiredIdentities().identities.removed).toEqual([c]);

    const { engine: immediate } = setup();
    const c2 = immediate.identityOf('x/c')!;
    expect(immediate.deletePod('x', 'c').identities.removed).toEqual([c2]);
  });
});
