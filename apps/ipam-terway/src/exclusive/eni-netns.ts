/**
 * Exclusive ENI mode, the pod side: the whole ENI link is moved into the pod's netns, renamed,
 * addressed from the ENI's metadata (primary address, vSwitch prefix and gateway) and given a
 * default route; on DEL it is moved back to the node under its old name, down. For `weft-cni`
 * (mode: eni) to call with what the daemon's exclusive allocation returns.
 *
 * Everything goes through rtnetlink sockets opened inside the namespaces (@weft/netlink over
 * @weft/netns): no iproute2, no setns of the calling thread, and any netns file works
 * (/run/netns/<name>, /proc/<pid>/ns/net, a runtime's bind mount).
 */
import { isNotFound, openRtnl, type Link, type Rtnl } from '@weft/netlink';
import { namedNetnsPath, Netns } from '@weft/netns';
import { sleep } from '../backoff';

export interface ExclusiveEniConfig {
  mac: string;
  ifname: string;
  address: string;
  prefixLength: number;
  gateway: string;
  ipv6?: { address: string; prefixLength: number; gateway: string };
  mtu?: number;
}

/**
 * A network namespace: an open Netns, a netns file path (absolute), a name under /run/netns (as
 * the daemon's `nodeNetns` key), or undefined for the caller's own namespace.
 */
export type NetnsLike = Netns | string | undefined;

/** A netns path for a name or path (`nodeNetns` in the daemon's config is an `ip netns` name). */
export function netnsPathOf(ref: string): string {
  return ref.startsWith('/') ? ref : namedNetnsPath(ref);
}

interface Opened {
  ns: Netns | undefined;
  rtnl: Rtnl;
  close(): void;
}

function open(ref: NetnsLike): Opened {
  if (ref === undefined) {
    const rtnl = openRtnl();
    return { ns: undefined, rtnl, close: () => rtnl.close() };
  }
  const owned = typeof ref === 'string';
  const ns = owned ? Netns.open(netnsPathOf(ref)) : ref;
  try {
    const rtnl = openRtnl(ns);
    return {
      ns,
      rtnl,
      close: () => {
        rtnl.close();
        if (owned) ns.close();
      },
    };
  } catch (err) {
    if (owned) ns.close();
    throw err;
  }
}

/** ipvlan links share their master's MAC: the ENI itself is the one that is not an ipvlan. */
export function isEniCandidate(l: Link, mac: string): boolean {
  return l.mac?.toLowerCase() === mac.toLowerCase() && l.kind !== 'ipvlan';
}

async function byMac(rtnl: Rtnl, mac: string): Promise<Link | undefined> {
  return (await rtnl.listLinks()).find((l) => isEniCandidate(l, mac));
}

/** The link with this MAC in `netns`, or undefined. */
export async function findEniLink(netns: NetnsLike, mac: string): Promise<Link | undefined> {
  const o = open(netns);
  try {
    return await byMac(o.rtnl, mac);
  } finally {
    o.close();
  }
}

/** A name no node interface has: the ENI carries it while it travels between namespaces. */
export function travelName(mac: string): string {
  return `wx${mac.replace(/:/g, '').slice(-8).toLowerCase()}`;
}

const ignoreNotFound = (err: unknown): void => {
  if (!isNotFound(err)) throw err;
};

/**
 * Moves the ENI with `c.mac` from the node into the pod and configures it. Returns the link's
 * name on the node (for moving it back), or undefined when it was in the pod already: a
 * repeated ADD only (re)configures it, so the caller keeps the name it got the first time.
 * Waits up to `waitMs` for the link to appear (a hot-plugged NIC may show up a moment after the
 * cloud reports the ENI InUse).
 */
export async function moveEniIntoPod(
  node: NetnsLike,
  pod: Netns | string,
  c: ExclusiveEniConfig,
  waitMs = 5_000,
): Promise<string | undefined> {
  const n = open(node);
  let p: Opened | undefined;
  try {
    p = open(pod);
    let inPod = await byMac(p.rtnl, c.mac);
    let nodeName: string | undefined;
    const taken = await p.rtnl.findLink(c.ifname);
    if (taken && taken.index !== inPod?.index)
      throw new Error(
        `interface ${c.ifname} already exists in the pod (kind ${taken.kind ?? 'device'}), not the ENI`,
      );
    if (!inPod) {
      let onNode = await byMac(n.rtnl, c.mac);
      const deadline = Date.now() + waitMs;
      for (let wait = 20; !onNode; wait = Math.min(wait * 2, 500)) {
        if (Date.now() > deadline)
          throw new Error(`no link with MAC ${c.mac} on the node after ${waitMs} ms`);
        await sleep(wait);
        onNode = await byMac(n.rtnl, c.mac);
      }
      nodeName = onNode.name;
      // Down (renames of up links fail on older kernels), a name that cannot clash with
      // anything in the pod, then into the pod.
      await n.rtnl.setDown(onNode.index);
      const moving = travelName(c.mac);
      if (onNode.name !== moving) await n.rtnl.rename(onNode.index, moving);
      await n.rtnl.setNetns(onNode.index, p.ns!);
      inPod = await byMac(p.rtnl, c.mac);
      if (!inPod) throw new Error(`ENI ${c.mac} moved into the pod but is not there`);
    }
    if (inPod.name !== c.ifname) {
      if (inPod.up) await p.rtnl.setDown(inPod.index);
      await p.rtnl.rename(inPod.index, c.ifname);
    }
    const link = await p.rtnl.getLink(c.ifname);
    if (c.mtu && link.mtu !== c.mtu) await p.rtnl.setMtu(link.index, c.mtu);
    await replaceAddress(p.rtnl, link.index, `${c.address}/${c.prefixLength}`, 4);
    if (c.ipv6) await replaceAddress(p.rtnl, link.index, `${c.ipv6.address}/${c.ipv6.prefixLength}`, 6);
    await p.rtnl.setUp(link.index);
    await p.rtnl.replaceRoute({
      dst: 'default',
      family: 4,
      gateway: c.gateway,
      dev: link.index,
      onlink: true,
    });
    if (c.ipv6)
      await p.rtnl.replaceRoute({
        dst: 'default',
        family: 6,
        gateway: c.ipv6.gateway,
        dev: link.index,
        onlink: true,
      });
    return nodeName;
  } finally {
    p?.close();
    n.close();
  }
}

/** The address, and no other address of that family (a repeated ADD with another allocation). */
async function replaceAddress(rtnl: Rtnl, index: number, cidr: string, family: 4 | 6): Promise<void> {
  for (const a of await rtnl.listAddresses({ dev: index, family })) {
    if (a.cidr === cidr || (family === 6 && a.address.toLowerCase().startsWith('fe80:'))) continue;
    await rtnl.deleteAddress(index, a.cidr).catch(ignoreNotFound);
  }
  await rtnl.addAddress(index, cidr, { nodad: true, replace: true });
}

/**
 * Moves the ENI back to the node under `nodeName` and leaves it down (its addresses and routes
 * went with the move). Succeeds when the pod or the link is already gone (DEL is best-effort).
 * A physical NIC whose netns was destroyed is back in the root namespace already, perhaps renamed
 * by the kernel (devN): it is found by MAC and given its name back. Returns whether the link was
 * found.
 */
export async function moveEniBack(
  node: NetnsLike,
  pod: Netns | string | undefined,
  mac: string,
  nodeName?: string,
): Promise<boolean> {
  const n = open(node);
  try {
    let podNs: Netns | undefined;
    let ownPod = false;
    if (typeof pod === 'string' && pod !== '') {
      podNs = Netns.tryOpen(netnsPathOf(pod));
      ownPod = true;
    } else if (pod instanceof Netns) podNs = pod;
    if (podNs && !podNs.isSameAs(n.ns ?? Netns.host())) {
      const p = openRtnl(podNs);
      try {
        const inPod = await byMac(p, mac);
        if (inPod) {
          if (inPod.up) await p.setDown(inPod.index);
          // The pod's name (eth0) may well exist on the node: travel under a unique one.
          const moving = travelName(mac);
          if (inPod.name !== moving) await p.rename(inPod.index, moving);
          await p.setNetns(inPod.index, n.ns ?? Netns.host());
        }
      } finally {
        p.close();
        if (ownPod) podNs.close();
      }
    } else if (ownPod) {
      podNs?.close();
    }
    const onNode = await byMac(n.rtnl, mac);
    if (!onNode) return false;
    if (onNode.up) await n.rtnl.setDown(onNode.index);
    if (nodeName && onNode.name !== nodeName) {
      const taken = await n.rtnl.findLink(nodeName);
      // Someone else has the name now: the ENI keeps its travel name (it is about to be detached).
      if (!taken) await n.rtnl.rename(onNode.index, nodeName);
    }
    return true;
  } finally {
    n.close();
  }
}
