import type { Labels, Namespace, Pod } from './model';

/**
 * Identity label scheme (Cilium's, so that Cilium selectors work unchanged). Every label of an
 * identity is `source:key` → value:
 *   k8s:<pod label key>                               pod labels
 *   k8s:io.kubernetes.pod.namespace                   the pod's namespace name
 *   k8s:io.cilium.k8s.namespace.labels.<ns label key> the namespace's labels
 *   cidr:<prefix>                                     "this address is inside <prefix>" (ipBlock support)
 *   reserved:<host|world|...>                         reserved identities
 */
export type LabelMap = ReadonlyMap<string, string>;

export const SOURCE_K8S = 'k8s';
export const SOURCE_RESERVED = 'reserved';
export const SOURCE_CIDR = 'cidr';
/** Selector keys without a source match a label of that key from any of these. */
export const LABEL_SOURCES = [SOURCE_K8S, SOURCE_RESERVED, SOURCE_CIDR] as const;

export const NAMESPACE_KEY = 'io.kubernetes.pod.namespace';
export const NAMESPACE_LABEL_PREFIX = 'io.cilium.k8s.namespace.labels.';
export const LABEL_NAMESPACE = `${SOURCE_K8S}:${NAMESPACE_KEY}`;
/** Kubernetes sets this label on every namespace (1.21+); the engine adds it when missing. */
export const METADATA_NAME_LABEL = 'kubernetes.io/metadata.name';

export function k8sLabel(key: string): string {
  return `${SOURCE_K8S}:${key}`;
}

export function namespaceLabel(key: string): string {
  return `${SOURCE_K8S}:${NAMESPACE_LABEL_PREFIX}${key}`;
}

export function cidrLabel(prefix: string): string {
  return `${SOURCE_CIDR}:${prefix}`;
}

export function reservedLabel(name: string): string {
  return `${SOURCE_RESERVED}:${name}`;
}

/** A namespace's labels as the API server shows them (with kubernetes.io/metadata.name). */
export function effectiveNamespaceLabels(name: string, labels: Labels | undefined): Labels {
  return { ...labels, [METADATA_NAME_LABEL]: name };
}

/**
 * Labels that make up a pod's identity: its own labels, its namespace's name and labels, and
 * the `cidr:` membership labels of its addresses (`cidrLabels`, computed by the engine).
 */
export function podIdentityLabels(
  pod: Pick<Pod, 'namespace' | 'labels'>,
  namespace: Namespace | undefined,
  cidrLabels: Iterable<string> = [],
): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(pod.labels)) out.set(k8sLabel(k), v);
  for (const [k, v] of Object.entries(effectiveNamespaceLabels(pod.namespace, namespace?.labels))) {
    out.set(namespaceLabel(k), v);
  }
  out.set(LABEL_NAMESPACE, pod.namespace);
  for (const label of cidrLabels) out.set(label, '');
  return out;
}

/** Canonical text of a label set: sorted, unambiguous (JSON), the allocator's key. */
export function labelSetKey(labels: LabelMap): string {
  return JSON.stringify([...labels].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)));
}

/** Human form `k8s:app=a,k8s:io.kubernetes.pod.namespace=x` (sorted). */
export function formatLabels(labels: LabelMap): string {
  return [...labels]
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([k, v]) => (v === '' ? k : `${k}=${v}`))
    .join(',');
}
