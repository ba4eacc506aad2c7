import { canonicalIp, cidrContainsCidr, parseCidr } from './ip';
import type {
  ContainerPort,
  L4Protocol,
  Namespace,
  NetworkPolicy,
  NetworkPolicyPeer,
  NetworkPolicyPort,
  NetworkPolicySpec,
  Pod,
  PolicyType,
} from './model';
import {
  asArray,
  asBoolean,
  asCidr,
  asInteger,
  asLabels,
  asLabelSelector,
  asObject,
  asObjectMeta,
  asString,
  at,
  checkPortName,
  expectKind,
  fail,
  onlyKeys,
  optional,
  type Obj,
} from './parse-util';

const PROTOCOLS: readonly L4Protocol[] = ['TCP', 'UDP', 'SCTP'];

export interface ParseOptions {
  /** Namespace for namespaced objects whose metadata has none (what kubectl does). Default `default`. */
  defaultNamespace?: string;
}

function asProtocol(value: unknown, path: string): L4Protocol {
  const text = asString(value, path);
  if (!PROTOCOLS.includes(text as L4Protocol))
    fail(path, `must be one of TCP, UDP, SCTP, got ${JSON.stringify(text)}`);
  return text as L4Protocol;
}

function parsePeer(value: unknown, path: string): NetworkPolicyPeer {
  const obj = asObject(value, path);
  onlyKeys(obj, path, ['podSelector', 'namespaceSelector', 'ipBlock']);
  const peer: NetworkPolicyPeer = {};
  const podSelector = optional(obj, 'podSelector', path, (v, p) => asLabelSelector(v, p));
  const namespaceSelector = optional(obj, 'namespaceSelector', path, (v, p) => asLabelSelector(v, p));
  if (podSelector) peer.podSelector = podSelector;
  if (namespaceSelector) peer.namespaceSelector = namespaceSelector;
  const ipBlock = optional(obj, 'ipBlock', path, (v, p) => {
    const block = asObject(v, p);
    onlyKeys(block, p, ['cidr', 'except']);
    const cidr = asCidr(block.cidr, at(p, 'cidr'));
    const outer = parseCidr(cidr)!;
    const except = optional(block, 'except', p, (ev, ep) =>
      asArray(ev, ep, (item, ip) => {
        const text = asCidr(item, ip);
        const inner = parseCidr(text)!;
        // Kubernetes rejects an except outside the block (or equal to it).
        if (!cidrContainsCidr(outer, inner) || inner.bits <= outer.bits) {
          fail(ip, `${text} must be strictly within ${cidr}`);
        }
        return text;
      }),
    );
    return except && except.length > 0 ? { cidr, except } : { cidr };
  });
  if (ipBlock) {
    if (podSelector || namespaceSelector)
      fail(at(path, 'ipBlock'), 'may not be combined with podSelector or namespaceSelector');
    peer.ipBlock = ipBlock;
  }
  if (!podSelector && !namespaceSelector && !ipBlock) {
    fail(path, 'must specify one of podSelector, namespaceSelector, ipBlock');
  }
  return peer;
}

function parsePort(value: unknown, path: string): NetworkPolicyPort {
  const obj = asObject(value, path);
  onlyKeys(obj, path, ['protocol', 'port', 'endPort']);
  const out: NetworkPolicyPort = {};
  const protocol = optional(obj, 'protocol', path, asProtocol);
  if (protocol) out.protocol = protocol;
  const port = optional(obj, 'port', path, (v, p) => {
    if (typeof v === 'number') return asInteger(v, p, 1, 65535);
    return checkPortName(asString(v, p), p);
  });
  if (port !== undefined) out.port = port;
  const endPort = optional(obj, 'endPort', path, (v, p) => asInteger(v, p, 1, 65535));
  if (endPort !== undefined) {
    if (typeof port !== 'number') fail(at(path, 'endPort'), 'may only be set with a numeric port');
    if (endPort < port) fail(at(path, 'endPort'), `must be >= port (${port}), got ${endPort}`);
    out.endPort = endPort;
  }
  return out;
}

function parseRule(value: unknown, path: string, peersKey: 'from' | 'to') {
  const obj = asObject(value, path);
  onlyKeys(obj, path, [peersKey, 'ports']);
  const peers = optional(obj, peersKey, path, (v, p) => asArray(v, p, parsePeer));
  const ports = optional(obj, 'ports', path, (v, p) => asArray(v, p, parsePort));
  return { peers, ports };
}

/** Parses and validates a `networking.k8s.io/v1` NetworkPolicy. */
export function parseNetworkPolicy(value: unknown, options: ParseOptions = {}): NetworkPolicy {
  const obj = asObject(value, '');
  onlyKeys(obj, '', ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  expectKind(obj, 'networking.k8s.io/v1', ['NetworkPolicy']);
  const meta = asObjectMeta(obj.metadata, 'metadata');
  const namespace = meta.namespace ?? options.defaultNamespace ?? 'default';
  const specObj = asObject(obj.spec, 'spec');
  onlyKeys(specObj, 'spec', ['podSelector', 'policyTypes', 'ingress', 'egress']);
  if (specObj.podSelector === undefined || specObj.podSelector === null) {
    fail('spec.podSelector', 'is required (use {} to select all pods of the namespace)');
  }
  const spec: NetworkPolicySpec = { podSelector: asLabelSelector(specObj.podSelector, 'spec.podSelector') };
  const policyTypes = optional(specObj, 'policyTypes', 'spec', (v, p) =>
    asArray(v, p, (t, tp): PolicyType => {
      const text = asString(t, tp);
      if (text !== 'Ingress' && text !== 'Egress')
        fail(tp, `must be Ingress or Egress, got ${JSON.stringify(text)}`);
      return text;
    }),
  );
  if (policyTypes) {
    if (new Set(policyTypes).size !== policyTypes.length) fail('spec.policyTypes', 'has duplicates');
    spec.policyTypes = policyTypes;
  }
  const ingress = optional(specObj, 'ingress', 'spec', (v, p) =>
    asArray(v, p, (r, rp) => {
      const { peers, ports } = parseRule(r, rp, 'from');
      return { ...(peers && { from: peers }), ...(ports && { ports }) };
    }),
  );
  if (ingress) spec.ingress = ingress;
  const egress = optional(specObj, 'egress', 'spec', (v, p) =>
    asArray(v, p, (r, rp) => {
      const { peers, ports } = parseRule(r, rp, 'to');
      return { ...(peers && { to: peers }), ...(ports && { ports }) };
    }),
  );
  if (egress) spec.egress = egress;
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: meta.name, namespace, ...(meta.labels && { labels: meta.labels }) },
    spec,
  };
}

/** Parses a v1 Namespace (`metadata.name`, `metadata.labels`); spec and status are ignored. */
export function parseNamespace(value: unknown): Namespace {
  const obj = asObject(value, '');
  onlyKeys(obj, '', ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  expectKind(obj, 'v1', ['Namespace']);
  const meta = asObjectMeta(obj.metadata, 'metadata');
  return { name: meta.name, labels: meta.labels ?? {} };
}

function parseContainerPorts(spec: Obj): ContainerPort[] {
  const out: ContainerPort[] = [];
  for (const key of ['initContainers', 'containers'] as const) {
    const containers = optional(spec, key, 'spec', (v, p) => asArray(v, p, asObject));
    containers?.forEach((c, ci) => {
      const cpath = at(at('spec', key), ci);
      const ports = optional(c, 'ports', cpath, (v, p) => asArray(v, p, asObject)) ?? [];
      ports.forEach((port, pi) => {
        const ppath = at(at(cpath, 'ports'), pi);
        const containerPort = asInteger(port.containerPort, at(ppath, 'containerPort'), 1, 65535);
        const protocol = optional(port, 'protocol', ppath, asProtocol) ?? 'TCP';
        const name = optional(port, 'name', ppath, (v, p) => checkPortName(asString(v, p), p));
        out.push(name === undefined ? { containerPort, protocol } : { name, containerPort, protocol });
      });
    });
  }
  return out;
}

/**
 * Parses a v1 Pod: labels, container ports (named ports), `spec.nodeName`, `spec.hostNetwork` and
 * `status.podIPs`/`status.podIP`. The rest of the pod spec is not policy's business and is ignored.
 */
export function parsePod(value: unknown, options: ParseOptions = {}): Pod {
  const obj = asObject(value, '');
  expectKind(obj, 'v1', ['Pod']);
  const meta = asObjectMeta(obj.metadata, 'metadata');
  const spec = asObject(obj.spec ?? {}, 'spec');
  const status = asObject(obj.status ?? {}, 'status');
  const ips: string[] = [];
  const addIp = (v: unknown, p: string) => {
    const ip = canonicalIp(asString(v, p));
    if (ip === undefined) fail(p, `${JSON.stringify(v)} is not an IP address`);
    if (!ips.includes(ip)) ips.push(ip);
  };
  optional(status, 'podIPs', 'status', (v, p) =>
    asArray(v, p, (item, ip) => addIp(asObject(item, ip).ip, at(ip, 'ip'))),
  );
  optional(status, 'podIP', 'status', addIp);
  const pod: Pod = {
    namespace: meta.namespace ?? options.defaultNamespace ?? 'default',
    name: meta.name,
    labels: meta.labels ?? {},
    ips,
    ports: parseContainerPorts(spec),
  };
  const nodeName = optional(spec, 'nodeName', 'spec', asString);
  if (nodeName !== undefined) pod.nodeName = nodeName;
  if (optional(spec, 'hostNetwork', 'spec', asBoolean)) pod.hostNetwork = true;
  return pod;
}

/** Validates a Pod given in the engine's own flat shape (as tests and the agent build them). */
export function validatePod(value: unknown): Pod {
  const obj = asObject(value, '');
  onlyKeys(obj, '', ['namespace', 'name', 'labels', 'ips', 'ports', 'nodeName', 'hostNetwork']);
  const pod: Pod = {
    namespace: asString(obj.namespace, 'namespace'),
    name: asString(obj.name, 'name'),
    labels: optional(obj, 'labels', '', asLabels) ?? {},
    ips: (optional(obj, 'ips', '', (v, p) => asArray(v, p, asString)) ?? []).map((ip, i) => {
      const c = canonicalIp(ip);
      if (c === undefined) fail(at('ips', i), `${JSON.stringify(ip)} is not an IP address`);
      return c;
    }),
    ports: (optional(obj, 'ports', '', (v, p) => asArray(v, p, asObject)) ?? []).map((port, i) => {
      const p = at('ports', i);
      onlyKeys(port, p, ['name', 'containerPort', 'protocol']);
      const containerPort = asInteger(port.containerPort, at(p, 'containerPort'), 1, 65535);
      const protocol = optional(port, 'protocol', p, asProtocol) ?? 'TCP';
      const name = optional(port, 'name', p, (v, pp) => checkPortName(asString(v, pp), pp));
      return name === undefined ? { containerPort, protocol } : { name, containerPort, protocol };
    }),
  };
  const nodeName = optional(obj, 'nodeName', '', asString);
  if (nodeName !== undefined) pod.nodeName = nodeName;
  if (optional(obj, 'hostNetwork', '', asBoolean)) pod.hostNetwork = true;
  return pod;
}
