import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { PolicyValidationError } from './errors';
import { parseCiliumPolicy } from './parse-cilium';
import { parseNamespace, parseNetworkPolicy, parsePod, validatePod } from './parse-k8s';
import { parseManifest, parsePolicy } from './parse';

const NP = {
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'p', namespace: 'x' },
};
const CNP = {
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumNetworkPolicy',
  metadata: { name: 'c', namespace: 'x' },
};

function fieldOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PolicyValidationError);
    expect((e as PolicyValidationError).code).toBe('POLICY_INVALID');
    return (e as PolicyValidationError).field;
  }
  throw new Error('expected a validation error');
}

describe('parseNetworkPolicy', () => {
  it('parses a full v1 policy from YAML', () => {
    const [doc] = parseAllDocuments(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: full, namespace: x, labels: { a: b }, resourceVersion: "5" }
spec:
  podSelector:
    matchLabels: { app: web }
    matchExpressions: [{ key: tier, operator: NotIn, values: [db] }]
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - podSelector: {}
      namespaceSelector: { matchLabels: { team: a } }
    - ipBlock: { cidr: 10.0.0.5/8, except: [10.1.0.0/16] }
    ports:
    - { protocol: TCP, port: 80, endPort: 90 }
    - { protocol: SCTP, port: http }
    - { protocol: UDP }
  egress:
  - {}
`);
    const p = parseNetworkPolicy(doc!.toJS());
    expect(p.metadata).toEqual({ name: 'full', namespace: 'x', labels: { a: 'b' } });
    expect(p.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(p.spec.ingress![0]!.from).toHaveLength(2);
    expect(p.spec.ingress![0]!.ports).toEqual([
      { protocol: 'TCP', port: 80, endPort: 90 },
      { protocol: 'SCTP', port: 'http' },
      { protocol: 'UDP' },
    ]);
    expect(p.spec.egress).toEqual([{}]);
  });

  it('defaults the namespace like kubectl', () => {
    const p = parseNetworkPolicy({ ...NP, metadata: { name: 'p' }, spec: { podSelector: {} } });
    expect(p.metadata.namespace).toBe('default');
    expect(
      parseNetworkPolicy(
        { ...NP, metadata: { name: 'p' }, spec: { podSelector: {} } },
        { defaultNamespace: 'q' },
      ).metadata.namespace,
    ).toBe('q');
  });

  it.each([
    ['unknown top-level field', { ...NP, spec: { podSelector: {} }, extra: 1 }, 'extra'],
    ['typo in spec', { ...NP, spec: { podselector: {} } }, 'spec.podselector'],
    ['missing podSelector', { ...NP, spec: {} }, 'spec.podSelector'],
    ['bad apiVersion', { ...NP, apiVersion: 'v1', spec: { podSelector: {} } }, 'apiVersion'],
    ['bad policy type', { ...NP, spec: { podSelector: {}, policyTypes: ['Both'] } }, 'spec.policyTypes[0]'],
    [
      'bad operator',
      { ...NP, spec: { podSelector: { matchExpressions: [{ key: 'a', operator: 'Is' }] } } },
      'spec.podSelector.matchExpressions[0].operator',
    ],
    [
      'In without values',
      { ...NP, spec: { podSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } } },
      'spec.podSelector.matchExpressions[0].values',
    ],
    [
      'Exists with values',
      {
        ...NP,
        spec: { podSelector: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] } },
      },
      'spec.podSelector.matchExpressions[0].values',
    ],
    [
      'bad label key',
      { ...NP, spec: { podSelector: { matchLabels: { 'a b': 'x' } } } },
      'spec.podSelector.matchLabels.a b',
    ],
    [
      'empty peer',
      { ...NP, spec: { podSelector: {}, ingress: [{ from: [{}] }] } },
      'spec.ingress[0].from[0]',
    ],
    [
      'bad cidr',
      { ...NP, spec: { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.300/8' } }] }] } },
      'spec.ingress[0].from[0].ipBlock.cidr',
    ],
    [
      'cidr without length',
      { ...NP, spec: { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.1' } }] }] } },
      'spec.ingress[0].from[0].ipBlock.cidr',
    ],
    [
      'except outside',
      {
        ...NP,
        spec: {
          podSelector: {},
          egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['11.0.0.0/16'] } }] }],
        },
      },
      'spec.egress[0].to[0].ipBlock.except[0]',
    ],
    [
      'ipBlock with podSelector',
      {
        ...NP,
        spec: {
          podSelector: {},
          ingress: [{ from: [{ podSelector: {}, ipBlock: { cidr: '10.0.0.0/8' } }] }],
        },
      },
      'spec.ingress[0].from[0].ipBlock',
    ],
    [
      'bad protocol',
      { ...NP, spec: { podSelector: {}, ingress: [{ ports: [{ protocol: 'ICMP' }] }] } },
      'spec.ingress[0].ports[0].protocol',
    ],
    [
      'port 0',
      { ...NP, spec: { podSelector: {}, ingress: [{ ports: [{ port: 0 }] }] } },
      'spec.ingress[0].ports[0].port',
    ],
    [
      'bad port name',
      { ...NP, spec: { podSelector: {}, ingress: [{ ports: [{ port: 'HTTP--x' }] }] } },
      'spec.ingress[0].ports[0].port',
    ],
    [
      'endPort with named port',
      { ...NP, spec: { podSelector: {}, ingress: [{ ports: [{ port: 'http', endPort: 90 }] }] } },
      'spec.ingress[0].ports[0].endPort',
    ],
    [
      'endPort below port',
      { ...NP, spec: { podSelector: {}, ingress: [{ ports: [{ port: 90, endPort: 80 }] }] } },
      'spec.ingress[0].ports[0].endPort',
    ],
    [
      'ports not a list',
      { ...NP, spec: { podSelector: {}, ingress: [{ ports: { port: 80 } }] } },
      'spec.ingress[0].ports',
    ],
    ['bad name', { ...NP, metadata: { name: 'Bad_Name' }, spec: { podSelector: {} } }, 'metadata.name'],
  ])('rejects %s, naming the field', (_what, obj, field) => {
    expect(fieldOf(() => parseNetworkPolicy(obj))).toBe(field);
  });

  it('treats null like absent (as the API server does)', () => {
    const p = parseNetworkPolicy({
      ...NP,
      spec: { podSelector: {}, ingress: [{ from: null, ports: null }], egress: null },
    });
    expect(p.spec.ingress).toEqual([{}]);
    expect(p.spec.egress).toBeUndefined();
  });
});

describe('parseCiliumPolicy', () => {
  it('parses a CNP with every supported section', () => {
    const p = parseCiliumPolicy({
      ...CNP,
      spec: {
        endpointSelector: { matchLabels: { 'k8s:app': 'web' } },
        ingress: [
          {
            fromEndpoints: [{ matchLabels: { app: 'a', 'k8s:io.kubernetes.pod.namespace': 'y' } }],
            fromCIDR: ['192.0.2.0/24'],
            fromCIDRSet: [{ cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] }],
            fromEntities: ['world', 'host', 'remote-node', 'health', 'init', 'unmanaged', 'cluster', 'all'],
            toPorts: [
              {
                ports: [
                  { port: 80, protocol: 'TCP' },
                  { port: '8000', endPort: 8100 },
                ],
                rules: { http: [{ method: 'GET' }] },
              },
            ],
            icmps: [{ fields: [{ type: 8, family: 'IPv4' }] }],
          },
        ],
        egress: [{ toFQDNs: [{ matchName: 'example.com' }], toPorts: [{ ports: [{ port: '443' }] }] }],
        ingressDeny: [{ fromEntities: ['world'] }],
        egressDeny: [{ toCIDR: ['203.0.113.0/24'] }],
        enableDefaultDeny: { egress: false },
      },
    });
    expect(p.kind).toBe('CiliumNetworkPolicy');
    const rule = p.spec!;
    expect(rule.ingress![0]!.toPorts![0]!.ports).toEqual([
      { port: '80', protocol: 'TCP' },
      { port: '8000', endPort: 8100 },
    ]);
    expect(rule.ingress![0]!.toPorts![0]!.rules).toEqual({ http: [{ method: 'GET' }] });
    expect(rule.enableDefaultDeny).toEqual({ egress: false });
  });

  it('parses a clusterwide policy with specs[]', () => {
    const p = parseCiliumPolicy({
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumClusterwideNetworkPolicy',
      metadata: { name: 'cw' },
      specs: [
        { endpointSelector: {}, ingress: [{}] },
        { endpointSelector: { matchLabels: { a: 'b' } }, egress: [{ toEntities: ['world'] }] },
      ],
    });
    expect(p.kind).toBe('CiliumClusterwideNetworkPolicy');
    expect(p.specs).toHaveLength(2);
  });

  it.each([
    ['no spec', { ...CNP }, 'spec'],
    ['no endpointSelector', { ...CNP, spec: { ingress: [] } }, 'spec.endpointSelector'],
    ['host policy', { ...CNP, spec: { nodeSelector: {} } }, 'spec.nodeSelector'],
    [
      'unknown entity',
      { ...CNP, spec: { endpointSelector: {}, ingress: [{ fromEntities: ['kube-apiserver'] }] } },
      'spec.ingress[0].fromEntities[0]',
    ],
    [
      'fromRequires',
      { ...CNP, spec: { endpointSelector: {}, ingress: [{ fromRequires: [{}] }] } },
      'spec.ingress[0].fromRequires',
    ],
    [
      'toServices',
      { ...CNP, spec: { endpointSelector: {}, egress: [{ toServices: [{}] }] } },
      'spec.egress[0].toServices',
    ],
    [
      'L7 in a deny rule',
      {
        ...CNP,
        spec: {
          endpointSelector: {},
          ingressDeny: [{ toPorts: [{ ports: [{ port: '80' }], rules: { http: [{}] } }] }],
        },
      },
      'spec.ingressDeny[0].toPorts[0].rules',
    ],
    [
      'toFQDNs in a deny rule',
      { ...CNP, spec: { endpointSelector: {}, egressDeny: [{ toFQDNs: [{ matchName: 'a' }] }] } },
      'spec.egressDeny[0].toFQDNs',
    ],
    [
      'bad protocol',
      {
        ...CNP,
        spec: {
          endpointSelector: {},
          ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'ICMP' }] }] }],
        },
      },
      'spec.ingress[0].toPorts[0].ports[0].protocol',
    ],
    [
      'port out of range',
      { ...CNP, spec: { endpointSelector: {}, ingress: [{ toPorts: [{ ports: [{ port: '70000' }] }] }] } },
      'spec.ingress[0].toPorts[0].ports[0].port',
    ],
    [
      'unknown L7 kind',
      { ...CNP, spec: { endpointSelector: {}, ingress: [{ toPorts: [{ rules: { grpc: [] } }] }] } },
      'spec.ingress[0].toPorts[0].rules.grpc',
    ],
    [
      'ICMP type 0',
      { ...CNP, spec: { endpointSelector: {}, ingress: [{ icmps: [{ fields: [{ type: 0 }] }] }] } },
      'spec.ingress[0].icmps[0].fields[0].type',
    ],
    [
      'CIDR group',
      { ...CNP, spec: { endpointSelector: {}, ingress: [{ fromCIDRSet: [{ cidrGroupRef: 'g' }] }] } },
      'spec.ingress[0].fromCIDRSet[0].cidrGroupRef',
    ],
    [
      'unknown label source',
      { ...CNP, spec: { endpointSelector: { matchLabels: { 'foo:app': 'a' } } } },
      'spec.endpointSelector.matchLabels.foo:app',
    ],
  ])('rejects %s, naming the field', (_what, obj, field) => {
    expect(fieldOf(() => parseCiliumPolicy(obj))).toBe(field);
  });
});

describe('pods, namespaces and manifests', () => {
  it('parses a v1 Pod with named container ports and pod IPs', () => {
    const pod = parsePod({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web', namespace: 'x', labels: { app: 'web' } },
      spec: {
        nodeName: 'n1',
        containers: [
          {
            name: 'c',
            image: 'i',
            ports: [
              { name: 'http', containerPort: 8080 },
              { containerPort: 53, protocol: 'UDP' },
            ],
          },
        ],
      },
      status: { podIP: '10.0.0.1', podIPs: [{ ip: '10.0.0.1' }, { ip: 'fd00:0::1' }] },
    });
    expect(pod).toEqual({
      namespace: 'x',
      name: 'web',
      labels: { app: 'web' },
      ips: ['10.0.0.1', 'fd00::1'],
      ports: [
        { name: 'http', containerPort: 8080, protocol: 'TCP' },
        { containerPort: 53, protocol: 'UDP' },
      ],
      nodeName: 'n1',
    });
  });

  it('rejects bad pod addresses and ports', () => {
    expect(
      fieldOf(() =>
        parsePod({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, status: { podIP: '10.0.0' } }),
      ),
    ).toBe('status.podIP');
    expect(
      fieldOf(() =>
        parsePod({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'p' },
          spec: { containers: [{ ports: [{ containerPort: 0 }] }] },
        }),
      ),
    ).toBe('spec.containers[0].ports[0].containerPort');
    expect(fieldOf(() => validatePod({ namespace: 'x', name: 'p', ips: ['nope'] }))).toBe('ips[0]');
    expect(fieldOf(() => validatePod({ namespace: 'x', name: 'p', colour: 'red' }))).toBe('colour');
  });

  it('parses namespaces and dispatches manifests on kind', () => {
    expect(
      parseNamespace({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x', labels: { team: 'a' } } }),
    ).toEqual({
      name: 'x',
      labels: { team: 'a' },
    });
    expect(parseManifest({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x' } }).kind).toBe(
      'Namespace',
    );
    expect(parseManifest({ ...NP, spec: { podSelector: {} } }).kind).toBe('Policy');
    expect(parsePolicy({ ...CNP, spec: { endpointSelector: {} } }).kind).toBe('CiliumNetworkPolicy');
    expect(fieldOf(() => parsePolicy({ kind: 'Ingress' }))).toBe('kind');
  });
});
