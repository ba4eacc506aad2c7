import { describe, expect, it } from 'vitest';
import { PolicyEngine } from './engine';
import { evaluate } from './evaluate';
import { IPPROTO, RESERVED_IDENTITY } from './identity';
import { buildNetpolFixture, loadNetpolFixture } from './netpol-fixture';
import { parseCiliumPolicy } from './parse-cilium';

function cnp(namespace: string, name: string, spec: Record<string, unknown>) {
  return parseCiliumPolicy({
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name, namespace },
    spec,
  });
}

function ccnp(name: string, spec: Record<string, unknown>) {
  return parseCiliumPolicy({
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumClusterwideNetworkPolicy',
    metadata: { name },
    spec,
  });
}

function setup() {
  const fx = buildNetpolFixture();
  const engine = new PolicyEngine();
  loadNetpolFixture(engine, fx);
  /** Verdict through trace and through entries; fails if they disagree. */
  const verdict = (from: string, to: string, port: number, proto: 'TCP' | 'UDP' | 'SCTP' = 'TCP') => {
    const t = engine.trace(from, to, port, proto).verdict;
    const ip = (s: string) => (s.includes('/') ? fx.ip(s) : s);
    const e = evaluate(
      engine.endpointPoliciesByIp(),
      engine.ipcache(),
      ip(from),
      ip(to),
      IPPROTO[proto],
      port,
    ).verdict;
    expect(e, `${from}→${to} ${proto}/${port}: entries say ${e}, trace ${t}`).toBe(t);
    return t;
  };
  return { fx, engine, verdict };
}

describe('Cilium policies', () => {
  it('deny rules win over allow rules', () => {
    const { engine, verdict } = setup();
    engine.upsertPolicy(
      cnp('x', 'allow-all-deny-b', {
        endpointSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ fromEntities: ['all'] }],
        ingressDeny: [
          {
            fromEndpoints: [{ matchLabels: { pod: 'b' } }],
            toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }],
          },
        ],
      }),
    );
    expect(verdict('x/b', 'x/a', 80)).toBe('deny');
    expect(verdict('x/b', 'x/a', 81)).toBe('allow');
    expect(verdict('x/c', 'x/a', 80)).toBe('allow');
    // Namespaced: fromEndpoints only selects pods of the policy's namespace.
    expect(verdict('y/b', 'x/a', 80)).toBe('allow');
    const t = engine.trace('x/b', 'x/a', 80, 'TCP');
    expect(t.ingress.reason).toBe('denied-by-rule');
    expect(t.ingress.matches.map((m) => `${m.verdict} ${m.rule}`).sort()).toEqual([
      'allow spec.ingress[0]',
      'deny spec.ingressDeny[0]',
    ]);
  });

  it('a deny from another policy wins over a Kubernetes allow', () => {
    const { engine, verdict } = setup();
    engine.upsertPolicy(
      ccnp('deny-y', {
        endpointSelector: {},
        ingressDeny: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'y' } }] }],
      }),
    );
    expect(verdict('y/a', 'x/a', 80)).toBe('deny');
    expect(verdict('y/a', 'z/c', 80)).toBe('deny');
    expect(verdict('x/a', 'z/c', 80)).toBe('deny'); // deny rules also turn default-deny on
    expect(engine.trace('x/a', 'z/c', 80, 'TCP').ingress.reason).toBe('default-deny');
  });

  it('enableDefaultDeny: false keeps other traffic flowing', () => {
    const { engine, verdict } = setup();
    engine.upsertPolicy(
      ccnp('deny-y', {
        endpointSelector: {},
        enableDefaultDeny: { ingress: false },
        ingressDeny: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'y' } }] }],
      }),
    );
    expect(verdict('y/a', 'x/a', 80)).toBe('deny');
    expect(verdict('x/a', 'z/c', 80)).toBe('allow');
  });

  it('maps entities to reserved identities and world CIDRs', () => {
    const { engine, verdict } = setup();
    engine.upsertPolicy(
      cnp('x', 'from-world', {
        endpointSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ fromEntities: ['world'] }],
      }),
    );
    expect(verdict('192.0.2.7', 'x/a', 80)).toBe('allow');
    expect(verdict('x/b', 'x/a', 80)).toBe('deny');
    engine.upsertPolicy(
      cnp('x', 'from-cluster', {
        endpointSelector: { matchLabels: { pod: 'b' } },
        ingress: [{ fromEntities: ['cluster'] }],
      }),
    );
    expect(verdict('z/c', 'x/b', 80)).toBe('allow');
    expect(verdict('192.0.2.7', 'x/b', 80)).toBe('deny');
    engine.upsertPolicy(
      cnp('x', 'from-host', {
        endpointSelector: { matchLabels: { pod: 'c' } },
        ingress: [{ fromEntities: ['host', 'health'] }],
      }),
    );
    const entries = engine.endpointPolicy('x/c')!.entries;
    expect(entries.map((e) => e.identity).sort()).toEqual([RESERVED_IDENTITY.host, RESERVED_IDENTITY.health]);
    const cluster = engine.endpointPolicy('x/b')!.entries.map((e) => e.identity);
    expect(cluster).toContain(RESERVED_IDENTITY.host);
    expect(cluster).toContain(RESERVED_IDENTITY.remoteNode);
    expect(cluster).not.toContain(RESERVED_IDENTITY.world);
    expect(cluster).toContain(engine.identityOf('z/c'));
  });

  it('entity all is identity 0', () => {
    const { engine } = setup();
    engine.upsertPolicy(
      cnp('x', 'all', { endpointSelector: { matchLabels: { pod: 'a' } }, egress: [{ toEntities: ['all'] }] }),
    );
    expect(engine.endpointPolicy('x/a')!.entries).toEqual([
      { identity: 0, protocol: 0, portLow: 0, portHigh: 0, direction: 'egress', verdict: 'allow' },
    ]);
  });

  it('CIDR rules select addresses outside the cluster, with except carved out', () => {
    const { engine, verdict } = setup();
    engine.upsertPolicy(
      cnp('x', 'to-net', {
        endpointSelector: { matchLabels: { pod: 'a' } },
        egress: [
          { toCIDRSet: [{ cidr: '198.51.100.0/24', except: ['198.51.100.128/25'] }] },
          { toCIDR: ['10.42.0.0/16'] },
        ],
      }),
    );
    expect(verdict('x/a', '198.51.100.1', 443)).toBe('allow');
    expect(verdict('x/a', '198.51.100.200', 443)).toBe('deny');
    expect(verdict('x/a', '203.0.113.1', 443)).toBe('deny');
    // Pods are not matched by Cilium CIDR rules, even inside the prefix.
    expect(verdict('x/a', 'y/a', 80)).toBe('deny');
    expect(verdict('x/a', '10.42.200.1', 80)).toBe('allow');
  });

  it('a rule with only ports applies to every peer; an empty rule enables default deny', () => {
    const { engine, verdict } = setup();
    engine.upsertPolicy(
      cnp('x', 'l4', {
        endpointSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ toPorts: [{ ports: [{ port: '81', protocol: 'UDP' }] }] }],
      }),
    );
    expect(verdict('z/b', 'x/a', 81, 'UDP')).toBe('allow');
    expect(verdict('192.0.2.1', 'x/a', 81, 'UDP')).toBe('allow');
    expect(verdict('z/b', 'x/a', 81, 'TCP')).toBe('deny');
    engine.upsertPolicy(cnp('x', 'deny', { endpointSelector: { matchLabels: { pod: 'b' } }, ingress: [{}] }));
    expect(verdict('x/a', 'x/b', 80)).toBe('deny');
    expect(engine.endpointPolicy('x/b')).toEqual({
      ingressEnforced: true,
      egressEnforced: false,
      entries: [],
    });
  });

  it('protocol ANY expands to TCP, UDP and SCTP; named ports resolve', () => {
    const { engine, verdict } = setup();
    engine.upsertPolicy(
      cnp('x', 'any', {
        endpointSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          {
            fromEndpoints: [{}],
            toPorts: [{ ports: [{ port: '80' }, { port: 'serve-81-udp', protocol: 'UDP' }] }],
          },
        ],
      }),
    );
    for (const proto of ['TCP', 'UDP', 'SCTP'] as const)
      expect(verdict('x/b', 'x/a', 80, proto)).toBe('allow');
    expect(verdict('x/b', 'x/a', 81, 'UDP')).toBe('allow');
    expect(verdict('x/b', 'x/a', 81, 'TCP')).toBe('deny');
  });

  it('fromEndpoints may name other namespaces explicitly; clusterwide selectors span namespaces', () => {
    const { engine, verdict } = setup();
    engine.upsertPolicy(
      cnp('x', 'from-y', {
        endpointSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.cilium.k8s.namespace.labels.ns': 'y' } }] }],
      }),
    );
    expect(verdict('y/c', 'x/a', 80)).toBe('allow');
    expect(verdict('x/c', 'x/a', 80)).toBe('deny');
    engine.upsertPolicy(
      ccnp('cw', {
        endpointSelector: { matchLabels: { pod: 'c' } },
        egress: [{ toEndpoints: [{ matchLabels: { pod: 'a' } }] }],
      }),
    );
    expect(verdict('z/c', 'x/a', 80)).toBe('deny'); // x/a only admits y
    expect(verdict('z/c', 'y/a', 80)).toBe('allow');
    expect(verdict('z/c', 'y/b', 80)).toBe('deny');
  });

  it('accepts L7 rules, enforces their L4 part and reports them', () => {
    const { engine, verdict } = setup();
    engine.upsertPolicy(
      cnp('x', 'http', {
        endpointSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          {
            fromEndpoints: [{}],
            toPorts: [
              { ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'GET', path: '/' }] } },
            ],
          },
        ],
        egress: [{ toFQDNs: [{ matchName: 'example.com' }], toPorts: [{ ports: [{ port: '443' }] }] }],
      }),
    );
    expect(verdict('x/b', 'x/a', 80)).toBe('allow');
    expect(verdict('x/b', 'x/a', 81)).toBe('deny');
    // toFQDNs is not a wildcard: it matches nothing until DNS-aware policy exists.
    expect(verdict('x/a', '192.0.2.1', 443)).toBe('deny');
    const status = engine.policyStatus().find((p) => p.key === 'CiliumNetworkPolicy/x/http')!;
    expect(status.selectedEndpoints).toBe(1);
    expect(status.warnings.map((w) => `${w.code} ${w.field}`)).toEqual([
      'L7_NOT_ENFORCED spec.ingress[0].toPorts[0].rules',
      'FQDN_NOT_ENFORCED spec.egress[0].toFQDNs',
    ]);
    expect(engine.endpointStatus('x/a')!.l7NotEnforced).toBe(true);
    expect(engine.endpointStatus('x/b')!.l7NotEnforced).toBe(false);
    const t = engine.trace('x/b', 'x/a', 80, 'TCP');
    expect(t.ingress.matches[0]!.l7NotEnforced).toBe(true);
    expect(t.explanation).toContain('L7 rules not enforced');
  });

  it('ICMP rules use the type as the port', () => {
    const { engine } = setup();
    engine.upsertPolicy(
      cnp('x', 'ping', {
        endpointSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ icmps: [{ fields: [{ type: 8 }, { type: 128, family: 'IPv6' }] }] }],
      }),
    );
    const entries = engine.endpointPolicy('x/a')!.entries;
    expect(entries).toEqual([
      {
        identity: 0,
        protocol: IPPROTO.ICMP,
        portLow: 8,
        portHigh: 8,
        direction: 'ingress',
        verdict: 'allow',
      },
      {
        identity: 0,
        protocol: IPPROTO.ICMPV6,
        portLow: 128,
        portHigh: 128,
        direction: 'ingress',
        verdict: 'allow',
      },
    ]);
  });
});
