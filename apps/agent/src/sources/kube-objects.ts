/**
 * Kubernetes objects (as the API server sends them: list items without kind/apiVersion, watch
 * objects with them, typed-client model instances with Date fields) projected onto what the
 * policy parsers read, then parsed. Projection first keeps fields the agent has no use for
 * (managedFields, the whole pod spec) out of memory and out of the strict parsers' way.
 */
import { parseCiliumPolicy, parseNamespace, parseNetworkPolicy, parsePod } from '@weft/policy';
import type { SourceObject } from './manifest-objects';

type Obj = Record<string, unknown>;

/** Plain JSON (drops undefined, Dates become strings, model classes become objects). */
function plain(v: unknown): Obj {
  return JSON.parse(JSON.stringify(v ?? {})) as Obj;
}

function meta(o: Obj): Obj {
  const m = (o.metadata ?? {}) as Obj;
  return {
    name: m.name,
    ...(m.namespace !== undefined && { namespace: m.namespace }),
    ...(m.labels !== undefined && { labels: m.labels }),
  };
}

function containerPorts(list: unknown): Obj[] | undefined {
  if (!Array.isArray(list)) return undefined;
  return list.map((c: Obj) => ({
    ...(Array.isArray(c?.ports) && {
      ports: (c.ports as Obj[]).map((p) => ({
        ...(p.name !== undefined && { name: p.name }),
        containerPort: p.containerPort,
        ...(p.protocol !== undefined && { protocol: p.protocol }),
      })),
    }),
  }));
}

export type KubeKind =
  'Namespace' | 'Pod' | 'NetworkPolicy' | 'CiliumNetworkPolicy' | 'CiliumClusterwideNetworkPolicy';

export const API_VERSIONS: Record<KubeKind, string> = {
  Namespace: 'v1',
  Pod: 'v1',
  NetworkPolicy: 'networking.k8s.io/v1',
  CiliumNetworkPolicy: 'cilium.io/v2',
  CiliumClusterwideNetworkPolicy: 'cilium.io/v2',
};

/** Parses one object of `kind`; throws PolicyValidationError naming the field. */
export function parseKubeObject(kind: KubeKind, raw: unknown): SourceObject {
  const o = plain(raw);
  const apiVersion = API_VERSIONS[kind];
  switch (kind) {
    case 'Namespace':
      return { kind, namespace: parseNamespace({ apiVersion, kind, metadata: meta(o) }) };
    case 'Pod': {
      const spec = (o.spec ?? {}) as Obj;
      const status = (o.status ?? {}) as Obj;
      const pod = {
        apiVersion,
        kind,
        metadata: meta(o),
        spec: {
          ...(spec.nodeName !== undefined && { nodeName: spec.nodeName }),
          ...(spec.hostNetwork !== undefined && { hostNetwork: spec.hostNetwork }),
          ...(spec.containers !== undefined && { containers: containerPorts(spec.containers) }),
          ...(spec.initContainers !== undefined && { initContainers: containerPorts(spec.initContainers) }),
        },
        status: {
          ...(status.podIP !== undefined && { podIP: status.podIP }),
          ...(Array.isArray(status.podIPs) && {
            podIPs: (status.podIPs as Obj[]).map((p) => ({ ip: p.ip })),
          }),
        },
      };
      return { kind, pod: parsePod(pod) };
    }
    case 'NetworkPolicy':
      return {
        kind: 'Policy',
        policy: parseNetworkPolicy({ apiVersion, kind, metadata: meta(o), spec: o.spec }),
      };
    case 'CiliumNetworkPolicy':
    case 'CiliumClusterwideNetworkPolicy':
      return {
        kind: 'Policy',
        policy: parseCiliumPolicy({
          apiVersion,
          kind,
          metadata: meta(o),
          ...(o.spec !== undefined && { spec: o.spec }),
          ...(o.specs !== undefined && { specs: o.specs }),
        }),
      };
  }
}

/** The key an object is deleted by, from its metadata alone (a delete needs no valid spec). */
export function kubeObjectRef(raw: unknown): { name: string; namespace?: string } {
  const m = (plain(raw).metadata ?? {}) as Obj;
  return {
    name: String(m.name ?? ''),
    ...(typeof m.namespace === 'string' && m.namespace !== '' && { namespace: m.namespace }),
  };
}
