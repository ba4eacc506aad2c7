/**
 * Input model: the Kubernetes and Cilium objects the engine consumes, as plain data.
 * Field names follow the upstream APIs so that YAML/JSON manifests map onto them 1:1;
 * `parse*` in parse-*.ts turn untrusted objects into these types.
 */

export type Labels = Readonly<Record<string, string>>;

export interface Namespace {
  name: string;
  labels: Labels;
}

export type L4Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol: L4Protocol;
}

export interface Pod {
  namespace: string;
  name: string;
  labels: Labels;
  /** Pod IPs (one per family at most in Kubernetes); empty while the pod has none. */
  ips: string[];
  /** Ports of all containers (named ports are resolved against these). */
  ports: ContainerPort[];
  nodeName?: string;
  /** Host-network pods share the node's identity: they are not endpoints. */
  hostNetwork?: boolean;
}

// ---- label selectors (meta/v1) ----

export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface LabelSelectorRequirement {
  key: string;
  operator: SelectorOperator;
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  uid?: string;
  resourceVersion?: string;
}

// ---- networking.k8s.io/v1 NetworkPolicy ----

export interface IPBlock {
  cidr: string;
  except?: string[];
}

export interface NetworkPolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: IPBlock;
}

export interface NetworkPolicyPort {
  /** Defaults to TCP. */
  protocol?: L4Protocol;
  /** A number or an IANA_SVC_NAME (named container port). Absent: all ports. */
  port?: number | string;
  /** Last port of a range starting at `port` (numeric `port` only). */
  endPort?: number;
}

export interface NetworkPolicyIngressRule {
  from?: NetworkPolicyPeer[];
  ports?: NetworkPolicyPort[];
}

export interface NetworkPolicyEgressRule {
  to?: NetworkPolicyPeer[];
  ports?: NetworkPolicyPort[];
}

export type PolicyType = 'Ingress' | 'Egress';

export interface NetworkPolicySpec {
  podSelector: LabelSelector;
  policyTypes?: PolicyType[];
  ingress?: NetworkPolicyIngressRule[];
  egress?: NetworkPolicyEgressRule[];
}

export interface NetworkPolicy {
  apiVersion: 'networking.k8s.io/v1';
  kind: 'NetworkPolicy';
  metadata: ObjectMeta & { namespace: string };
  spec: NetworkPolicySpec;
}

// ---- cilium.io/v2 CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy ----

export type CiliumEntity =
  'world' | 'cluster' | 'host' | 'all' | 'remote-node' | 'health' | 'init' | 'unmanaged';

export const CILIUM_ENTITIES: readonly CiliumEntity[] = [
  'world',
  'cluster',
  'host',
  'all',
  'remote-node',
  'health',
  'init',
  'unmanaged',
];

export interface CiliumCidrRule {
  cidr: string;
  except?: string[];
}

export type CiliumProtocol = L4Protocol | 'ANY';

export interface CiliumPortProtocol {
  /** Port number or named port; "0" (or absent) means all ports. */
  port?: string;
  endPort?: number;
  protocol?: CiliumProtocol;
}

/** L7 rules: accepted and reported, not enforced yet (see README). */
export interface CiliumL7Rules {
  http?: unknown[];
  dns?: unknown[];
  kafka?: unknown[];
  l7proto?: string;
  l7?: unknown[];
}

export interface CiliumPortRule {
  ports?: CiliumPortProtocol[];
  rules?: CiliumL7Rules;
}

export interface CiliumIcmpField {
  type: number;
  family?: 'IPv4' | 'IPv6';
}

export interface CiliumIcmpRule {
  fields: CiliumIcmpField[];
}

export interface CiliumIngressRule {
  fromEndpoints?: LabelSelector[];
  fromCIDR?: string[];
  fromCIDRSet?: CiliumCidrRule[];
  fromEntities?: CiliumEntity[];
  toPorts?: CiliumPortRule[];
  icmps?: CiliumIcmpRule[];
}

export interface CiliumEgressRule {
  toEndpoints?: LabelSelector[];
  toCIDR?: string[];
  toCIDRSet?: CiliumCidrRule[];
  toEntities?: CiliumEntity[];
  toPorts?: CiliumPortRule[];
  icmps?: CiliumIcmpRule[];
  /** Accepted and reported: DNS-based peers are not enforced yet (they match nothing). */
  toFQDNs?: Array<{ matchName?: string; matchPattern?: string }>;
}

export interface CiliumRule {
  endpointSelector: LabelSelector;
  ingress?: CiliumIngressRule[];
  ingressDeny?: CiliumIngressRule[];
  egress?: CiliumEgressRule[];
  egressDeny?: CiliumEgressRule[];
  enableDefaultDeny?: { ingress?: boolean; egress?: boolean };
  description?: string;
}

export interface CiliumNetworkPolicy {
  apiVersion: 'cilium.io/v2';
  kind: 'CiliumNetworkPolicy';
  metadata: ObjectMeta & { namespace: string };
  spec?: CiliumRule;
  specs?: CiliumRule[];
}

export interface CiliumClusterwideNetworkPolicy {
  apiVersion: 'cilium.io/v2';
  kind: 'CiliumClusterwideNetworkPolicy';
  metadata: ObjectMeta;
  spec?: CiliumRule;
  specs?: CiliumRule[];
}

export type AnyPolicy = NetworkPolicy | CiliumNetworkPolicy | CiliumClusterwideNetworkPolicy;
export type PolicyKind = AnyPolicy['kind'];

/** `NetworkPolicy/ns/name`, `CiliumNetworkPolicy/ns/name`, `CiliumClusterwideNetworkPolicy/name`. */
export function policyKey(policy: Pick<AnyPolicy, 'kind' | 'metadata'>): string {
  const ns = policy.metadata.namespace;
  return policy.kind === 'CiliumClusterwideNetworkPolicy' || ns === undefined
    ? `${policy.kind}/${policy.metadata.name}`
    : `${policy.kind}/${ns}/${policy.metadata.name}`;
}

/** `namespace/name` of a pod: the endpoint key used throughout the engine. */
export function podKey(pod: Pick<Pod, 'namespace' | 'name'>): string {
  return `${pod.namespace}/${pod.name}`;
}
