import { describe, expect, it } from 'vitest';
import { PolicyEngine } from './engine';
import type { L4Protocol } from './model';
import {
  buildNetpolFixture,
  expectMatrix,
  formatMatrix,
  loadNetpolFixture,
  reachability,
  type NetpolFixture,
  type ReachabilityMatrix,
} from './netpol-fixture';
import { parseNetworkPolicy } from './parse-k8s';

/*
 * Cases modelled on the upstream Kubernetes network-policy e2e suite (namespaces x, y, z; pods
 * a, b, c; ports 80/81; TCP/UDP/SCTP). Every matrix is computed twice, through `trace` (policies
 * evaluated directly) and through the entries + ipcache evaluated like the kernel; both must
 * agree with the expectation.
 */

function np(namespace: string, name: string, spec: Record<string, unknown>) {
  return parseNetworkPolicy({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace },
    spec,
  });
}

function setup(options?: Parameters<typeof buildNetpolFixture>[0]) {
  const fx = buildNetpolFixture(options);
  const engine = new PolicyEngine();
  loadNetpolFixture(engine, fx);
  return { fx, engine };
}

function check(
  engine: PolicyEngine,
  fx: NetpolFixture,
  port: number,
  protocol: L4Protocol,
  expected: ReachabilityMatrix,
) {
  const r = reachability(engine, fx, port, protocol);
  expect(r.disagreements).toEqual([]);
  expect(formatMatrix(fx, r.byTrace)).toBe(formatMatrix(fx, expected));
  expect(formatMatrix(fx, r.byEntries)).toBe(formatMatrix(fx, expected));
}

const ns = (key: string) => key.split('/')[0];
const isPod = (key: string, pod: string) => key === pod;

describe('netpol e2e model', () => {
  it('allows everything with no policy', () => {
    const { fx, engine } = setup();
    for (const proto of ['TCP', 'UDP', 'SCTP'] as const)
      check(engine, fx, 80, proto, expectMatrix(fx, 'allow'));
  });

  it('default-deny-ingress isolates every pod of the namespace for ingress only', () => {
    const { fx, engine } = setup();
    engine.upsertPolicy(np('x', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] }));
    const expected = expectMatrix(fx, 'allow', (_f, to) => (ns(to) === 'x' ? 'deny' : undefined));
    for (const proto of ['TCP', 'UDP', 'SCTP'] as const) {
      check(engine, fx, 80, proto, expected);
      check(engine, fx, 81, proto, expected);
    }
  });

  it('default-deny-all isolates the namespace both ways', () => {
    const { fx, engine } = setup();
    engine.upsertPolicy(np('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }));
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (f, t) => (ns(f) === 'x' || ns(t) === 'x' ? 'deny' : undefined)),
    );
  });

  it('allows ingress from pods of the server namespace by podSelector', () => {
    const { fx, engine } = setup();
    engine.upsertPolicy(
      np('x', 'allow-b', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
      }),
    );
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (f, t) => (isPod(t, 'x/a') ? (f === 'x/b' ? 'allow' : 'deny') : undefined)),
    );
  });

  it('supports podSelector matchExpressions', () => {
    const { fx, engine } = setup();
    engine.upsertPolicy(
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
    );
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (f, t) => (t === 'x/a' ? (f === 'x/b' ? 'allow' : 'deny') : undefined)),
    );
  });

  it('allows ingress from other namespaces by namespaceSelector (pods only, own namespace not implied)', () => {
    const { fx, engine } = setup();
    engine.upsertPolicy(
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
    );
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (f, t) => (t === 'x/a' ? (ns(f) === 'y' ? 'allow' : 'deny') : undefined)),
    );
  });

  it('ANDs podSelector and namespaceSelector within one peer', () => {
    const { fx, engine } = setup();
    engine.upsertPolicy(
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
    );
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (f, t) => (t === 'x/a' ? (f === 'y/b' ? 'allow' : 'deny') : undefined)),
    );
  });

  it('ORs separate peers', () => {
    const { fx, engine } = setup();
    engine.upsertPolicy(
      np('x', 'or', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          {
            from: [
              { namespaceSelector: { matchLabels: { ns: 'y' } } },
              { podSelector: { matchLabels: { pod: 'b' } } },
            ],
          },
        ],
      }),
    );
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (f, t) =>
        t === 'x/a' ? (ns(f) === 'y' || f === 'x/b' ? 'allow' : 'deny') : undefined,
      ),
    );
  });

  it('empty namespaceSelector means all pods in all namespaces', () => {
    const { fx, engine } = setup();
    engine.upsertPolicy(
      np('x', 'all-ns', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ namespaceSelector: {} }] }],
      }),
    );
    check(engine, fx, 80, 'TCP', expectMatrix(fx, 'allow'));
    // ...but not addresses outside the cluster.
    expect(engine.trace('192.0.2.1', 'x/a', 80, 'TCP').verdict).toBe('deny');
    expect(engine.trace('192.0.2.1', 'x/b', 80, 'TCP').verdict).toBe('allow');
  });

  it('restricts by port number', () => {
    const { fx, engine } = setup();
    engine.upsertPolicy(
      np('x', 'port-81', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          {
            from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }],
            ports: [{ port: 81, protocol: 'TCP' }],
          },
        ],
      }),
    );
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (_f, t) => (t === 'x/a' ? 'deny' : undefined)),
    );
    check(
      engine,
      fx,
      81,
      'TCP',
      expectMatrix(fx, 'allow', (f, t) => (t === 'x/a' ? (ns(f) === 'y' ? 'allow' : 'deny') : undefined)),
    );
    check(
      engine,
      fx,
      81,
      'UDP',
      expectMatrix(fx, 'allow', (_f, t) => (t === 'x/a' ? 'deny' : undefined)),
    );
  });

  it('resolves named ports on ingress against the selected pod', () => {
    const { fx, engine } = setup();
    engine.upsertPolicy(
      np('x', 'named', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          {
            from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }],
            ports: [{ port: 'serve-81-udp', protocol: 'UDP' }],
          },
        ],
      }),
    );
    check(
      engine,
      fx,
      81,
      'UDP',
      expectMatrix(fx, 'allow', (f, t) => (t === 'x/a' ? (ns(f) === 'y' ? 'allow' : 'deny') : undefined)),
    );
    check(
      engine,
      fx,
      80,
      'UDP',
      expectMatrix(fx, 'allow', (_f, t) => (t === 'x/a' ? 'deny' : undefined)),
    );
    check(
      engine,
      fx,
      81,
      'TCP',
      expectMatrix(fx, 'allow', (_f, t) => (t === 'x/a' ? 'deny' : undefined)),
    );
  });

  it('resolves named ports on egress against each destination pod', () => {
    const { fx, engine } = setup();
    engine.upsertPolicy(
      np('x', 'egress-named', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [{ ports: [{ port: 'serve-80-tcp' }] }],
      }),
    );
    check(engine, fx, 80, 'TCP', expectMatrix(fx, 'allow'));
    check(
      engine,
      fx,
      81,
      'TCP',
      expectMatrix(fx, 'allow', (f) => (f === 'x/a' ? 'deny' : undefined)),
    );
  });

  it('client-side egress deny wins over a server-side allow', () => {
    const { fx, engine } = setup();
    engine.upsertPolicy(
      np('x', 'client-egress', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }],
      }),
    );
    engine.upsertPolicy(
      np('x', 'server-allows-all', { podSelector: { matchLabels: { pod: 'b' } }, ingress: [{}] }),
    );
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (f, t) => (f === 'x/a' ? (ns(t) === 'y' ? 'allow' : 'deny') : undefined)),
    );
    const t = engine.trace('x/a', 'x/b', 80, 'TCP');
    expect(t.egress.reason).toBe('default-deny');
    expect(t.ingress.reason).toBe('allowed-by-rule');
  });

  it('allows any port on one protocol', () => {
    const { fx, engine } = setup();
    engine.upsertPolicy(
      np('x', 'udp-only', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ ports: [{ protocol: 'UDP' }] }],
      }),
    );
    check(engine, fx, 80, 'UDP', expectMatrix(fx, 'allow'));
    check(engine, fx, 81, 'UDP', expectMatrix(fx, 'allow'));
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (_f, t) => (t === 'x/a' ? 'deny' : undefined)),
    );
    check(
      engine,
      fx,
      80,
      'SCTP',
      expectMatrix(fx, 'allow', (_f, t) => (t === 'x/a' ? 'deny' : undefined)),
    );
  });

  it('an SCTP-only policy still isolates TCP and UDP', () => {
    const { fx, engine } = setup();
    engine.upsertPolicy(
      np('x', 'sctp', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ ports: [{ protocol: 'SCTP', port: 80 }] }],
      }),
    );
    check(engine, fx, 80, 'SCTP', expectMatrix(fx, 'allow'));
    check(
      engine,
      fx,
      81,
      'SCTP',
      expectMatrix(fx, 'allow', (_f, t) => (t === 'x/a' ? 'deny' : undefined)),
    );
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (_f, t) => (t === 'x/a' ? 'deny' : undefined)),
    );
    check(
      engine,
      fx,
      80,
      'UDP',
      expectMatrix(fx, 'allow', (_f, t) => (t === 'x/a' ? 'deny' : undefined)),
    );
  });

  it('honours endPort ranges', () => {
    const { fx, engine } = setup({ ports: [80, 81, 82, 83], protocols: ['TCP'] });
    engine.upsertPolicy(
      np('x', 'range', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ ports: [{ protocol: 'TCP', port: 81, endPort: 82 }] }],
      }),
    );
    const denyToA = expectMatrix(fx, 'allow', (_f, t) => (t === 'x/a' ? 'deny' : undefined));
    check(engine, fx, 80, 'TCP', denyToA);
    check(engine, fx, 81, 'TCP', expectMatrix(fx, 'allow'));
    check(engine, fx, 82, 'TCP', expectMatrix(fx, 'allow'));
    check(engine, fx, 83, 'TCP', denyToA);
  });

  it('ipBlock with except applies to pod addresses (egress)', () => {
    const { fx, engine } = setup();
    // All of the cluster's pod range except y/b's address (host bits set, as upstream writes it).
    engine.upsertPolicy(
      np('x', 'cidr-except', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ ipBlock: { cidr: '10.42.0.0/16', except: [`${fx.ip('y/b')}/32`] } }] }],
      }),
    );
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (f, t) => (f === 'x/a' && t === 'y/b' ? 'deny' : undefined)),
    );
  });

  it('ipBlock except is not a deny: another policy may still allow the excepted address', () => {
    const { fx, engine } = setup();
    engine.upsertPolicy(
      np('x', 'cidr-except', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ ipBlock: { cidr: '10.42.2.0/24', except: [`${fx.ip('y/b')}/32`] } }] }],
      }),
    );
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (f, t) =>
        f === 'x/a' ? (ns(t) === 'y' && t !== 'y/b' ? 'allow' : 'deny') : undefined,
      ),
    );
    engine.upsertPolicy(
      np('x', 'allow-yb', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ ipBlock: { cidr: `${fx.ip('y/b')}/32` } }] }],
      }),
    );
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (f, t) => (f === 'x/a' ? (ns(t) === 'y' ? 'allow' : 'deny') : undefined)),
    );
  });

  it('ipBlock on ingress selects pods by address', () => {
    const { fx, engine } = setup();
    engine.upsertPolicy(
      np('x', 'cidr-in', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ ipBlock: { cidr: `${fx.ip('z/c')}/32` } }] }],
      }),
    );
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (f, t) => (t === 'x/a' ? (f === 'z/c' ? 'allow' : 'deny') : undefined)),
    );
  });

  it('ingress and egress together', () => {
    const { fx, engine } = setup();
    engine.upsertPolicy(
      np('x', 'both', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
        egress: [{ to: [{ podSelector: { matchLabels: { pod: 'c' } } }] }],
      }),
    );
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (f, t) => {
        if (f === 'x/a' && t === 'x/a') return 'deny';
        if (t === 'x/a') return f === 'x/b' ? 'allow' : 'deny';
        if (f === 'x/a') return t === 'x/c' ? 'allow' : 'deny';
        return undefined;
      }),
    );
  });

  it('explicit Ingress-only policyTypes ignores egress rules', () => {
    const { fx, engine } = setup();
    engine.upsertPolicy(
      np('x', 'ingress-only', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Ingress'],
        ingress: [{}],
        egress: [{ to: [{ podSelector: { matchLabels: { pod: 'c' } } }] }],
      }),
    );
    check(engine, fx, 80, 'TCP', expectMatrix(fx, 'allow'));
  });

  it('follows pod label updates (allow from updated pod, deny to updated pod)', () => {
    const { fx, engine } = setup();
    engine.upsertPolicy(
      np('x', 'from-updated', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ podSelector: { matchLabels: { pod2: 'updated' } } }] }],
      }),
    );
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (_f, t) => (t === 'x/a' ? 'deny' : undefined)),
    );
    const xb = fx.pods.find((p) => p.namespace === 'x' && p.name === 'b')!;
    engine.upsertPod({ ...xb, labels: { ...xb.labels, pod2: 'updated' } });
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (f, t) => (t === 'x/a' ? (f === 'x/b' ? 'allow' : 'deny') : undefined)),
    );

    engine.upsertPolicy(
      np('x', 'isolate-target', {
        podSelector: { matchLabels: { target: 'isolated' } },
        policyTypes: ['Ingress'],
      }),
    );
    const xc = fx.pods.find((p) => p.namespace === 'x' && p.name === 'c')!;
    engine.upsertPod({ ...xc, labels: { ...xc.labels, target: 'isolated' } });
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (f, t) =>
        t === 'x/a' ? (f === 'x/b' ? 'allow' : 'deny') : t === 'x/c' ? 'deny' : undefined,
      ),
    );
  });

  it('follows namespace label updates', () => {
    const { fx, engine } = setup();
    engine.upsertPolicy(
      np('x', 'from-updated-ns', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns2: 'updated' } } }] }],
      }),
    );
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (_f, t) => (t === 'x/a' ? 'deny' : undefined)),
    );
    engine.upsertNamespace({ name: 'y', labels: { ns: 'y', ns2: 'updated' } });
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (f, t) => (t === 'x/a' ? (ns(f) === 'y' ? 'allow' : 'deny') : undefined)),
    );
  });

  it('applies to a namespace created after the policy', () => {
    const fx = buildNetpolFixture();
    const engine = new PolicyEngine();
    engine.upsertPolicy(
      np('x', 'from-z', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'z' } } }] }],
      }),
    );
    engine.transaction((w) => {
      fx.namespaces.filter((n) => n.name !== 'z').forEach((n) => w.upsertNamespace(n));
      fx.pods.filter((p) => p.namespace !== 'z').forEach((p) => w.upsertPod(p));
    });
    expect(engine.trace('y/a', 'x/a', 80, 'TCP').verdict).toBe('deny');
    // Namespace z and its pods arrive later.
    engine.upsertNamespace(fx.namespaces.find((n) => n.name === 'z')!);
    fx.pods.filter((p) => p.namespace === 'z').forEach((p) => engine.upsertPod(p));
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (f, t) => (t === 'x/a' ? (ns(f) === 'z' ? 'allow' : 'deny') : undefined)),
    );
  });

  it('stops enforcing a policy once deleted', () => {
    const { fx, engine } = setup();
    engine.upsertPolicy(np('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }));
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (f, t) => (ns(f) === 'x' || ns(t) === 'x' ? 'deny' : undefined)),
    );
    engine.deletePolicy('NetworkPolicy/x/deny-all');
    check(engine, fx, 80, 'TCP', expectMatrix(fx, 'allow'));
  });

  it('stacks policies as a union of allows', () => {
    const { fx, engine } = setup();
    engine.upsertPolicy(
      np('x', 'allow-b', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
      }),
    );
    engine.upsertPolicy(
      np('x', 'allow-z', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'z' } } }], ports: [{ port: 81 }] }],
      }),
    );
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (f, t) => (t === 'x/a' ? (f === 'x/b' ? 'allow' : 'deny') : undefined)),
    );
    check(
      engine,
      fx,
      81,
      'TCP',
      expectMatrix(fx, 'allow', (f, t) =>
        t === 'x/a' ? (f === 'x/b' || ns(f) === 'z' ? 'allow' : 'deny') : undefined,
      ),
    );
  });

  it('egress allowed to a namespace and port, ingress default-deny elsewhere', () => {
    const { fx, engine } = setup();
    engine.upsertPolicy(
      np('x', 'egress-y-80', {
        podSelector: {},
        policyTypes: ['Egress'],
        egress: [
          {
            to: [
              { namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'a' } } },
            ],
            ports: [{ port: 80, protocol: 'TCP' }],
          },
        ],
      }),
    );
    check(
      engine,
      fx,
      80,
      'TCP',
      expectMatrix(fx, 'allow', (f, t) => (ns(f) === 'x' ? (t === 'y/a' ? 'allow' : 'deny') : undefined)),
    );
    check(
      engine,
      fx,
      81,
      'TCP',
      expectMatrix(fx, 'allow', (f) => (ns(f) === 'x' ? 'deny' : undefined)),
    );
  });
});
