/**
 * The part of an endpoint registration every mode fills the same way: the attachment, the
 * network, and the pod as the runtime named it (CNI_ARGS, `args.cni.labels`). Built before ADD
 * touches anything, so malformed labels are refused while nothing exists to roll back.
 */
import type { EndpointMode, EndpointRegistration } from '@weft/agent-api';
import { CniError, CNI_ERR_INVALID_NETCONF, type CniContext } from '@weft/cni';
import type { WeftConf } from './pod-conf';

export type RegistrationBase = Pick<
  EndpointRegistration,
  'containerId' | 'ifname' | 'network' | 'netns' | 'mode' | 'podNamespace' | 'podName' | 'podUid' | 'labels'
>;

export function registrationBase(ctx: CniContext, w: WeftConf, mode: EndpointMode): RegistrationBase {
  return {
    containerId: ctx.containerId,
    ifname: ctx.ifname,
    network: w.network,
    netns: ctx.netns,
    mode,
    podNamespace: ctx.args.K8S_POD_NAMESPACE,
    podName: ctx.args.K8S_POD_NAME,
    podUid: ctx.args.K8S_POD_UID,
    labels: cniLabels(ctx),
  };
}

function invalid(what: string, value: unknown, expected: string): never {
  throw new CniError(
    CNI_ERR_INVALID_NETCONF,
    `invalid network config: ${what} ${JSON.stringify(value)} (expected ${expected})`,
  );
}

/** Labels from the `args.cni.labels` convention: an object of strings, or a list of {key, value}. */
export function cniLabels(ctx: CniContext): Record<string, string> | undefined {
  const labels = (ctx.conf.args as { cni?: { labels?: unknown } } | undefined)?.cni?.labels;
  if (labels === undefined) return undefined;
  const out: Record<string, string> = {};
  if (Array.isArray(labels)) {
    for (const l of labels) {
      if (!l || typeof l.key !== 'string' || typeof l.value !== 'string')
        invalid('args.cni.labels entry', l, '{"key": string, "value": string}');
      out[l.key] = l.value;
    }
  } else if (typeof labels === 'object' && labels !== null) {
    for (const [k, v] of Object.entries(labels)) {
      if (typeof v !== 'string') invalid(`args.cni.labels.${k}`, v, 'a string');
      out[k] = v;
    }
  } else {
    invalid('args.cni.labels', labels, 'an object or a list');
  }
  return out;
}
