import type { TrafficDirection, PolicyVerdict } from '@weft/datapath';
import { IPPROTO } from './identity';
import { formatCidr, parseCidr } from './ip';
import {
  cidrLabel,
  k8sLabel,
  LABEL_NAMESPACE,
  NAMESPACE_KEY,
  NAMESPACE_LABEL_PREFIX,
  namespaceLabel,
  reservedLabel,
} from './labels';
import type {
  AnyPolicy,
  CiliumEgressRule,
  CiliumEntity,
  CiliumIngressRule,
  CiliumRule,
  L4Protocol,
  LabelSelector,
  NetworkPolicy,
  NetworkPolicyPeer,
  NetworkPolicyPort,
} from './model';
import { policyKey } from './model';
import { Selector, selectorRequirements, type Requirement } from './selector';

/**
 * Policies compiled into selector-based rules. Every peer, whatever it was written as (pod and
 * namespace selectors, ipBlocks, CIDRs, entities), becomes a label selector over identities; the
 * engine turns selectors into identity sets and rules into datapath entries.
 */

export interface CompiledPort {
  /** IANA protocol number; 0 = any. */
  protocol: number;
  /** 0..0 = any port; ignored when `name` is set. */
  portLow: number;
  portHigh: number;
  /** Named container port, resolved per destination pod. */
  name?: string;
  /** The port carries L7 rules, which are not enforced yet: only its L4 part is. */
  l7?: boolean;
}

export interface CompiledPeer {
  /** Where it came from, for trace: `spec.ingress[0].from[1]`. */
  path: string;
  selector: Selector;
  /** Human summary for trace. */
  text: string;
}

export interface CompiledRule {
  policy: string;
  /** e.g. `spec.ingress[0]`, `specs[1].egressDeny[0]`. */
  path: string;
  direction: TrafficDirection;
  verdict: PolicyVerdict;
  /** true: every peer (identity 0). */
  anyPeer: boolean;
  /** Union of peers (empty and not anyPeer: matches nothing). */
  peers: CompiledPeer[];
  /** null: every protocol and port. */
  ports: CompiledPort[] | null;
}

/** One selecting unit: a k8s policy, or one rule (`spec`/`specs[i]`) of a Cilium policy. */
export interface CompiledPart {
  policy: string;
  path: string;
  subject: Selector;
  /** Selecting an endpoint turns default-deny on for these directions. */
  enforce: Record<TrafficDirection, boolean>;
  rules: CompiledRule[];
}

export interface PolicyWarning {
  policy: string;
  field: string;
  code: 'L7_NOT_ENFORCED' | 'FQDN_NOT_ENFORCED';
  message: string;
}

export interface PrefixUse {
  /** Canonical prefix text. */
  cidr: string;
  /** k8s ipBlocks match pod addresses too; Cilium CIDR rules only match outside the cluster. */
  matchesPods: boolean;
}

export interface CompiledPolicy {
  key: string;
  kind: AnyPolicy['kind'];
  namespace?: string;
  parts: CompiledPart[];
  prefixes: PrefixUse[];
  warnings: PolicyWarning[];
  source: AnyPolicy;
}

const PROTO: Record<L4Protocol, number> = { TCP: IPPROTO.TCP, UDP: IPPROTO.UDP, SCTP: IPPROTO.SCTP };

export function protocolNumber(protocol: L4Protocol): number {
  return PROTO[protocol];
}

function canonical(cidr: string): string {
  return formatCidr(parseCidr(cidr)!);
}

/** Pods only: every pod identity carries its namespace name; reserved and CIDR identities do not. */
const POD_ONLY: Requirement = { key: LABEL_NAMESPACE, operator: 'Exists' };

function inNamespace(ns: string): Requirement {
  return { key: LABEL_NAMESPACE, operator: 'In', values: [ns] };
}

function describeSelector(s: LabelSelector): string {
  const parts = Object.entries(s.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of s.matchExpressions ?? [])
    parts.push(`${e.key} ${e.operator}${e.values ? ` (${e.values.join(',')})` : ''}`);
  return `{${parts.join(', ')}}`;
}

function cidrRequirements(cidr: string, except: readonly string[] | undefined): Requirement[] {
  return [
    { key: cidrLabel(canonical(cidr)), operator: 'Exists' },
    ...(except ?? []).map((e): Requirement => ({ key: cidrLabel(canonical(e)), operator: 'DoesNotExist' })),
  ];
}

// ---------------------------------------------------------------- Kubernetes NetworkPolicy

function k8sPeer(peer: NetworkPolicyPeer, ns: string, path: string, prefixes: PrefixUse[]): CompiledPeer {
  if (peer.ipBlock) {
    const { cidr, except } = peer.ipBlock;
    prefixes.push({ cidr: canonical(cidr), matchesPods: true });
    for (const e of except ?? []) prefixes.push({ cidr: canonical(e), matchesPods: true });
    return {
      path,
      selector: new Selector(cidrRequirements(cidr, except)),
      text: `ipBlock ${cidr}${except?.length ? ` except ${except.join(',')}` : ''}`,
    };
  }
  const reqs: Requirement[] = [];
  const text: string[] = [];
  if (peer.podSelector) {
    reqs.push(...selectorRequirements(peer.podSelector, k8sLabel));
    text.push(`pods ${describeSelector(peer.podSelector)}`);
  } else {
    text.push('all pods');
  }
  if (peer.namespaceSelector) {
    reqs.push(...selectorRequirements(peer.namespaceSelector, namespaceLabel), POD_ONLY);
    text.push(`in namespaces ${describeSelector(peer.namespaceSelector)}`);
  } else {
    // nil namespaceSelector: the policy's own namespace.
    reqs.push(inNamespace(ns));
    text.push(`in namespace ${ns}`);
  }
  return { path, selector: new Selector(reqs), text: text.join(' ') };
}

function k8sPorts(ports: NetworkPolicyPort[] | undefined): CompiledPort[] | null {
  if (!ports || ports.length === 0) return null;
  return ports.map((p) => {
    const protocol = PROTO[p.protocol ?? 'TCP'];
    if (typeof p.port === 'string') return { protocol, portLow: 0, portHigh: 0, name: p.port };
    if (p.port === undefined) return { protocol, portLow: 0, portHigh: 0 };
    return { protocol, portLow: p.port, portHigh: p.endPort ?? p.port };
  });
}

function compileNetworkPolicy(policy: NetworkPolicy): CompiledPolicy {
  const key = policyKey(policy);
  const ns = policy.metadata.namespace;
  const { spec } = policy;
  // API-server defaulting: Ingress always, Egress when egress rules exist.
  const types = spec.policyTypes ?? [
    'Ingress',
    ...(spec.egress && spec.egress.length > 0 ? ['Egress' as const] : []),
  ];
  const prefixes: PrefixUse[] = [];
  const rules: CompiledRule[] = [];
  const add = (
    direction: TrafficDirection,
    list: Array<{ peers?: NetworkPolicyPeer[]; ports?: NetworkPolicyPort[] }>,
    field: string,
    peerField: string,
  ) => {
    list.forEach((rule, i) => {
      const path = `spec.${field}[${i}]`;
      const peers = (rule.peers ?? []).map((p, j) => k8sPeer(p, ns, `${path}.${peerField}[${j}]`, prefixes));
      rules.push({
        policy: key,
        path,
        direction,
        verdict: 'allow',
        // Empty or absent from/to: every source/destination, inside the cluster or not.
        anyPeer: peers.length === 0,
        peers,
        ports: k8sPorts(rule.ports),
      });
    });
  };
  if (types.includes('Ingress'))
    add(
      'ingress',
      (spec.ingress ?? []).map((r) => ({ peers: r.from, ports: r.ports })),
      'ingress',
      'from',
    );
  if (types.includes('Egress'))
    add(
      'egress',
      (spec.egress ?? []).map((r) => ({ peers: r.to, ports: r.ports })),
      'egress',
      'to',
    );
  return {
    key,
    kind: 'NetworkPolicy',
    namespace: ns,
    parts: [
      {
        policy: key,
        path: 'spec.podSelector',
        subject: new Selector([...selectorRequirements(spec.podSelector, k8sLabel), inNamespace(ns)]),
        enforce: { ingress: types.includes('Ingress'), egress: types.includes('Egress') },
        rules,
      },
    ],
    prefixes,
    warnings: [],
    source: policy,
  };
}

// ---------------------------------------------------------------- Cilium policies

const ENTITY_SELECTORS: Record<Exclude<CiliumEntity, 'all'>, Requirement[]> = {
  world: [{ key: reservedLabel('world'), operator: 'Exists' }],
  // Everything that is not outside the cluster: pods, host, remote nodes, health, init, unmanaged.
  cluster: [{ key: reservedLabel('world'), operator: 'DoesNotExist' }],
  host: [{ key: reservedLabel('host'), operator: 'Exists' }],
  'remote-node': [{ key: reservedLabel('remote-node'), operator: 'Exists' }],
  health: [{ key: reservedLabel('health'), operator: 'Exists' }],
  init: [{ key: reservedLabel('init'), operator: 'Exists' }],
  unmanaged: [{ key: reservedLabel('unmanaged'), operator: 'Exists' }],
};

/** Cilium keys: `k8s:app` stays, `app` becomes `any:app` (any source). */
function ciliumKey(key: string): string {
  return /^[a-z0-9-]+:/.test(key) ? key : `any:${key}`;
}

function bareKey(key: string): string {
  return key.replace(/^[a-z0-9-]+:/, '');
}

function mentionsKey(s: LabelSelector, test: (bare: string, full: string) => boolean): boolean {
  const keys = [...Object.keys(s.matchLabels ?? {}), ...(s.matchExpressions ?? []).map((e) => e.key)];
  return keys.some((k) => test(bareKey(k), k));
}

function ciliumEndpointPeer(s: LabelSelector, ns: string | undefined): Requirement[] {
  const reqs = selectorRequirements(s, ciliumKey);
  if (mentionsKey(s, (_bare, full) => full.startsWith('reserved:'))) return reqs;
  // A namespaced policy's peers are in its namespace unless the selector names namespaces itself.
  const namesNamespace = mentionsKey(
    s,
    (bare) => bare === NAMESPACE_KEY || bare.startsWith(NAMESPACE_LABEL_PREFIX),
  );
  if (ns !== undefined && !namesNamespace) reqs.push(inNamespace(ns));
  reqs.push(POD_ONLY);
  return reqs;
}

type CiliumDirectional = CiliumIngressRule & CiliumEgressRule;

function compileCiliumRule(
  rule: CiliumRule,
  path: string,
  key: string,
  ns: string | undefined,
  prefixes: PrefixUse[],
  warnings: PolicyWarning[],
): CompiledPart {
  const rules: CompiledRule[] = [];
  const sections: Array<[keyof CiliumRule, TrafficDirection, PolicyVerdict]> = [
    ['ingress', 'ingress', 'allow'],
    ['ingressDeny', 'ingress', 'deny'],
    ['egress', 'egress', 'allow'],
    ['egressDeny', 'egress', 'deny'],
  ];
  for (const [field, direction, verdict] of sections) {
    const list = (rule[field] ?? []) as CiliumDirectional[];
    const p = direction === 'ingress' ? 'from' : 'to';
    list.forEach((r, i) => {
      const rpath = `${path}.${field}[${i}]`;
      const peers: CompiledPeer[] = [];
      const endpoints = direction === 'ingress' ? r.fromEndpoints : r.toEndpoints;
      endpoints?.forEach((s, j) =>
        peers.push({
          path: `${rpath}.${p}Endpoints[${j}]`,
          selector: new Selector(ciliumEndpointPeer(s, ns)),
          text: `endpoints ${describeSelector(s)}`,
        }),
      );
      const cidrs = (direction === 'ingress' ? r.fromCIDR : r.toCIDR) ?? [];
      const cidrSets: Array<{ cidr: string; except?: string[] }> = [
        ...cidrs.map((cidr) => ({ cidr })),
        ...((direction === 'ingress' ? r.fromCIDRSet : r.toCIDRSet) ?? []),
      ];
      cidrSets.forEach((set, j) => {
        prefixes.push({ cidr: canonical(set.cidr), matchesPods: false });
        for (const e of set.except ?? []) prefixes.push({ cidr: canonical(e), matchesPods: false });
        peers.push({
          path: j < cidrs.length ? `${rpath}.${p}CIDR[${j}]` : `${rpath}.${p}CIDRSet[${j - cidrs.length}]`,
          // Cilium CIDR rules select addresses outside the cluster only.
          selector: new Selector([...cidrRequirements(set.cidr, set.except), ...ENTITY_SELECTORS.world]),
          text: `CIDR ${set.cidr}${set.except?.length ? ` except ${set.except.join(',')}` : ''}`,
        });
      });
      let anyPeer = false;
      const entities = direction === 'ingress' ? r.fromEntities : r.toEntities;
      entities?.forEach((entity, j) => {
        if (entity === 'all') anyPeer = true;
        else
          peers.push({
            path: `${rpath}.${p}Entities[${j}]`,
            selector: new Selector(ENTITY_SELECTORS[entity]),
            text: `entity ${entity}`,
          });
      });
      if (r.toFQDNs && r.toFQDNs.length > 0) {
        warnings.push({
          policy: key,
          field: `${rpath}.toFQDNs`,
          code: 'FQDN_NOT_ENFORCED',
          message: 'toFQDNs peers are accepted but not enforced yet: they match no destination',
        });
      }
      const hasL3 = [
        endpoints,
        cidrs.length ? cidrs : undefined,
        direction === 'ingress' ? r.fromCIDRSet : r.toCIDRSet,
        entities,
        r.toFQDNs,
      ].some((x) => x !== undefined && x.length > 0);
      const ports = ciliumPorts(r, rpath, key, warnings);
      // A rule with only L4 parts applies to every peer; a rule with neither selects nothing.
      if (!hasL3 && ports !== null) anyPeer = true;
      rules.push({
        policy: key,
        path: rpath,
        direction,
        verdict,
        anyPeer,
        peers: anyPeer ? [] : peers,
        ports,
      });
    });
  }
  const hasIngress = (rule.ingress?.length ?? 0) + (rule.ingressDeny?.length ?? 0) > 0;
  const hasEgress = (rule.egress?.length ?? 0) + (rule.egressDeny?.length ?? 0) > 0;
  return {
    policy: key,
    path: `${path}.endpointSelector`,
    subject: new Selector([
      ...selectorRequirements(rule.endpointSelector, ciliumKey),
      ...(ns !== undefined ? [inNamespace(ns)] : [POD_ONLY]),
    ]),
    enforce: {
      ingress: hasIngress && rule.enableDefaultDeny?.ingress !== false,
      egress: hasEgress && rule.enableDefaultDeny?.egress !== false,
    },
    rules,
  };
}

function ciliumPorts(
  r: CiliumDirectional,
  rpath: string,
  key: string,
  warnings: PolicyWarning[],
): CompiledPort[] | null {
  if (!r.toPorts?.length && !r.icmps?.length) return null;
  const out: CompiledPort[] = [];
  r.toPorts?.forEach((pr, i) => {
    const l7 = pr.rules !== undefined;
    if (l7) {
      warnings.push({
        policy: key,
        field: `${rpath}.toPorts[${i}].rules`,
        code: 'L7_NOT_ENFORCED',
        message: 'L7 rules are accepted but not enforced yet: only the L4 part (ports) applies',
      });
    }
    const flag = l7 ? { l7: true } : {};
    const ports = pr.ports?.length ? pr.ports : [{}];
    for (const pp of ports) {
      const protocols =
        !pp.protocol || pp.protocol === 'ANY' ? (['TCP', 'UDP', 'SCTP'] as const) : [pp.protocol];
      for (const proto of protocols) {
        const protocol = PROTO[proto];
        if (pp.port !== undefined && !/^\d+$/.test(pp.port))
          out.push({ protocol, portLow: 0, portHigh: 0, name: pp.port, ...flag });
        else {
          const low = pp.port === undefined ? 0 : Number(pp.port);
          out.push({ protocol, portLow: low, portHigh: low === 0 ? 0 : (pp.endPort ?? low), ...flag });
        }
      }
    }
  });
  for (const icmp of r.icmps ?? []) {
    for (const f of icmp.fields) {
      const protocol = f.family === 'IPv6' ? IPPROTO.ICMPV6 : IPPROTO.ICMP;
      out.push({ protocol, portLow: f.type, portHigh: f.type });
    }
  }
  return out;
}

function compileCiliumPolicy(policy: Exclude<AnyPolicy, NetworkPolicy>): CompiledPolicy {
  const key = policyKey(policy);
  const ns = policy.kind === 'CiliumNetworkPolicy' ? policy.metadata.namespace : undefined;
  const prefixes: PrefixUse[] = [];
  const warnings: PolicyWarning[] = [];
  const parts: CompiledPart[] = [];
  if (policy.spec) parts.push(compileCiliumRule(policy.spec, 'spec', key, ns, prefixes, warnings));
  policy.specs?.forEach((r, i) =>
    parts.push(compileCiliumRule(r, `specs[${i}]`, key, ns, prefixes, warnings)),
  );
  return {
    key,
    kind: policy.kind,
    ...(ns !== undefined && { namespace: ns }),
    parts,
    prefixes,
    warnings,
    source: policy,
  };
}

/** Compiles a parsed policy (see parse*). */
export function compilePolicy(policy: AnyPolicy): CompiledPolicy {
  return policy.kind === 'NetworkPolicy' ? compileNetworkPolicy(policy) : compileCiliumPolicy(policy);
}
