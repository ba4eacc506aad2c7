/**
 * How a registration names its pod in the policy engine, and the pod the engine gets: the
 * source's pod object (labels, container ports for named ports) merged with what weft-cni said
 * (addresses, labels from CNI args). Addresses of this node's pods come only from registrations:
 * an address in a pod object's status may be stale (the sandbox is gone, the address reused).
 */
import { createHash } from 'node:crypto';
import type { EndpointRegistration } from '@weft/agent-api';
import type { Pod } from '@weft/policy';

/** Namespace of pods registered without K8S_POD_NAMESPACE/K8S_POD_NAME (plain CNI runtimes). */
export const UNNAMED_POD_NAMESPACE = 'default';

export function podRefOf(reg: EndpointRegistration): { namespace: string; name: string } {
  if (reg.podNamespace && reg.podName) return { namespace: reg.podNamespace, name: reg.podName };
  // One pseudo pod per container (all its interfaces), a name no Kubernetes pod is likely to have.
  const h = createHash('sha256').update(reg.containerId).digest('hex').slice(0, 16);
  return { namespace: UNNAMED_POD_NAMESPACE, name: `cni-${h}` };
}

export function podKeyOfRegistration(reg: EndpointRegistration): string {
  const r = podRefOf(reg);
  return `${r.namespace}/${r.name}`;
}

/**
 * The engine's view of a pod: `source` (may be undefined) merged with the registrations of its
 * attachments (may be empty). undefined: nothing is known about it any more.
 */
export function effectivePod(
  key: string,
  source: Pod | undefined,
  registrations: EndpointRegistration[],
  nodeName: string,
): Pod | undefined {
  if (registrations.length === 0) {
    if (!source) return undefined;
    // This node's pods without an attachment have no address the agent can vouch for.
    return source.nodeName === nodeName ? { ...source, ips: [] } : source;
  }
  const slash = key.indexOf('/');
  const labels: Record<string, string> = {};
  for (const r of registrations) Object.assign(labels, r.labels ?? {});
  // The source is live (label changes arrive through it), so its labels win.
  if (source) Object.assign(labels, source.labels);
  const ips: string[] = [];
  for (const r of registrations) for (const ip of r.ips) if (!ips.includes(ip)) ips.push(ip);
  return {
    namespace: key.slice(0, slash),
    name: key.slice(slash + 1),
    labels,
    ips,
    ports: source?.ports ?? [],
    nodeName,
  };
}
