/**
 * `"chainingMode": "terway"`: weft-cni after Terway (Alibaba Cloud's ENI plugin), as Cilium's
 * terway-chainer. Terway's ENIIP pods come in two shapes:
 * - a veth whose peer is in the host namespace (policy-route mode): handled like generic-veth,
 *   plus the ENI the pod's traffic leaves by, when the conf says which (`eniDevice`, or `master`)
 *   or the prevResult reports it as a host interface of its own;
 * - an IPvlan slave of the ENI inside the pod, with no host peer: the datapath attaches inside the
 *   pod's namespace (`attachInPod`) and the IPvlan master is recorded as the parent device, taken
 *   from the pod link's parent (IFLA_LINK in the host namespace) or from `master`/`eniDevice`.
 * See pod/chained-endpoint.ts and docs/chaining.md.
 */
import { CniError, CNI_ERR_INVALID_NETCONF, type CniContext, type CniResult } from '@weft/cni';
import type { Link, Rtnl } from '@weft/netlink';
import {
  chainedMode,
  hostDevice,
  resolveVeth,
  verifyVeth,
  type ChainedAttach,
  type ChainedFlavour,
  type ChainedLinks,
  type ChainedRecord,
  type PrevPodInterface,
} from '../../pod/chained-endpoint';
import { checkFailed } from '../../pod/pod-addressing';
import type { WeftConf } from '../../pod/pod-conf';

function invalid(msg: string, details?: string): never {
  throw new CniError(CNI_ERR_INVALID_NETCONF, `invalid network config: ${msg}`, details);
}

/** `eniDevice` (this mode's key) or `master` (weft's key for a parent device), validated. */
export function confParentDevice(ctx: CniContext, w: WeftConf): { key: string; name: string } | undefined {
  const eni = ctx.conf.eniDevice;
  if (eni !== undefined) {
    if (typeof eni !== 'string' || eni === '' || Buffer.byteLength(eni) > 15 || /[\s/:]/.test(eni))
      invalid(`eniDevice ${JSON.stringify(eni)} (expected an interface name of at most 15 bytes without "/", ":" or spaces)`);
    if (w.master !== undefined && w.master !== eni)
      invalid(`eniDevice ${JSON.stringify(eni)} and master ${JSON.stringify(w.master)} name different devices`);
    return { key: 'eniDevice', name: eni };
  }
  return w.master !== undefined ? { key: 'master', name: w.master } : undefined;
}

/**
 * A parent device the prevResult reports: a host-side interface (no sandbox) other than the veth
 * peer that exists in the host namespace and is neither a veth nor a bridge. Only when exactly one.
 */
async function parentFromPrev(prev: CniResult, host: Link, hostRtnl: Rtnl): Promise<string | undefined> {
  const found: string[] = [];
  for (const i of prev.interfaces ?? []) {
    if (i.sandbox || i.name === host.name) continue;
    const link = await hostRtnl.findLink(i.name);
    if (link && link.kind !== 'veth' && link.kind !== 'bridge') found.push(link.name);
  }
  return found.length === 1 ? found[0] : undefined;
}

/** The IPvlan master of a pod link, in the host namespace; undefined when it cannot be told. */
async function ipvlanMaster(podLink: Link, hostRtnl: Rtnl): Promise<Link | undefined> {
  // IFLA_LINK of a slave moved into the pod is the master's index in the namespace named by
  // IFLA_LINK_NETNSID; with no netnsid the master is in the pod's own namespace (not a Terway shape).
  if (podLink.linkIndex === undefined || podLink.linkNetnsId === undefined) return undefined;
  const master = await hostRtnl.findLink(podLink.linkIndex);
  return master && master.kind !== 'ipvlan' ? master : undefined;
}

async function resolve(
  ctx: CniContext,
  w: WeftConf,
  pod: PrevPodInterface,
  podLink: Link,
  links: ChainedLinks,
): Promise<ChainedAttach> {
  const named = confParentDevice(ctx, w);
  if (podLink.kind === 'ipvlan') {
    const master = await ipvlanMaster(podLink, links.hostRtnl);
    if (named) {
      await hostDevice(links.hostRtnl, named.key, named.name);
      if (master && master.name !== named.name)
        invalid(`${named.key} ${JSON.stringify(named.name)}, but the IPvlan pod interface ${podLink.name} is a slave of ${master.name}`);
    }
    const parent = named?.name ?? master?.name;
    if (!parent)
      invalid(
        `cannot tell the IPvlan master of the pod interface ${podLink.name}`,
        'it is not a slave of a device in the host namespace; name it with "eniDevice" or "master"',
      );
    return { kind: 'in-pod', podLink, parentDevice: parent };
  }
  if (podLink.kind !== 'veth') {
    invalid(
      `the pod interface ${podLink.name} is a ${podLink.kind ?? 'device'}; chainingMode "terway" takes a veth or an IPvlan pod interface`,
    );
  }
  const veth = await resolveVeth(pod, podLink, links);
  if (named) {
    await hostDevice(links.hostRtnl, named.key, named.name);
    return { ...veth, parentDevice: named.name };
  }
  const fromPrev = await parentFromPrev(ctx.prevResult!, veth.host, links.hostRtnl);
  return fromPrev ? { ...veth, parentDevice: fromPrev } : veth;
}

async function verify(record: ChainedRecord, podLink: Link, links: ChainedLinks): Promise<void> {
  if (!record.attachInPod) {
    await verifyVeth(record, podLink, links);
  } else {
    if (podLink.kind !== 'ipvlan') checkFailed(`${podLink.name} is a ${podLink.kind ?? 'device'}, not the IPvlan interface weft registered`);
    const master = await ipvlanMaster(podLink, links.hostRtnl);
    if (master && record.parentDevice && master.name !== record.parentDevice)
      checkFailed(`${podLink.name} is a slave of ${master.name}, weft registered ${record.parentDevice}`);
  }
  if (record.parentDevice && !(await links.hostRtnl.findLink(record.parentDevice)))
    checkFailed(`the parent device ${record.parentDevice} no longer exists on the host`);
}

export const terwayFlavour: ChainedFlavour = { mode: 'terway', resolve, verify };

export const terwayMode = chainedMode(terwayFlavour);
