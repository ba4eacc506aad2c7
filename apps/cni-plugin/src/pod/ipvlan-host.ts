/**
 * How the node reaches its own IPvlan pods. An ipvlan master never hands its slaves what the node
 * itself sends: the node's packets to a pod address leave through the master onto the wire, and in
 * L2 mode the pods' ARP requests for the node's address never reach the node's stack. The classic
 * fix (Terway's `ipvl_x`, Cilium's IPvlan mode) is one more slave of the same master, in the node's
 * namespace: `wipvl<master ifindex>`, no address, and per pod address
 *   - a host route `<pod ip>/32 dev wipvl<N>` (the node's packets go to the pod through the
 *     ipvlan switch instead of out of the master), and
 *   - in L2 mode a permanent neighbour entry `<pod ip> lladdr <master MAC>` on it (every slave
 *     has the master's MAC, so no ARP is needed; the pod's reply comes back with that MAC and the
 *     ipvlan switch delivers it by destination address).
 * The host routes take the node's address as their source, and the pod reaches that address: in
 * L3 its packets are routed in the master's namespace anyway; in L2 the pod gets a /32 route to it
 * with the neighbour pinned to the master's MAC (pinNodeRoute), so the ipvlan switch hands them to
 * the master without any ARP. (IPv6 in L2 is left out: pod to pod and via the gateway only.)
 *
 * The slave is shared by every pod of the master (and by every network using it): created by the
 * first ADD, removed when the last pod route on it goes. ADD/DEL/GC serialise on a lock file per
 * master so that a DEL never removes the slave under an ADD that is about to use it.
 *
 * The ipvlan mode is a property of the master (the kernel's ipvl_port: the last slave created
 * sets it for all), so a network asking for another mode than the slave has is refused.
 */
import { closeSync, constants, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { CniError, CNI_ERR_INVALID_NETCONF } from '@weft/cni';
import { isExists, isNotFound, type Link, type Rtnl } from '@weft/netlink';
import { native } from '@weft/native';
import { Netns } from '@weft/netns';
import { familyOf, hostPrefix } from './pod-addressing';
import type { IpvlanMode } from './pod-conf';

const RTPROT_KERNEL = 2;
const LOCK_TIMEOUT_MS = 30_000;

/** The node-side slave of a master: derived from the master's ifindex, so DEL finds it without records. */
export function ipvlanHostLinkName(master: Link): string {
  return `wipvl${master.index}`;
}

/** Mode of an ipvlan link as the kernel reports it ("l2", "l3", "l3s"; a number if unknown). */
export function ipvlanModeOf(link: Link): string | undefined {
  const m = link.ipvlan?.mode;
  return m === undefined ? undefined : String(m);
}

/**
 * Refuses (7) a network whose ipvlanMode differs from what the master's slaves already use: the
 * kernel would silently switch every pod on the master to the new mode.
 */
export async function assertMasterMode(hostRtnl: Rtnl, master: Link, mode: IpvlanMode): Promise<void> {
  const slave = await hostRtnl.findLink(ipvlanHostLinkName(master));
  if (!slave || slave.kind !== 'ipvlan' || slave.linkIndex !== master.index) return;
  const current = ipvlanModeOf(slave);
  if (current !== undefined && current !== mode) {
    throw new CniError(
      CNI_ERR_INVALID_NETCONF,
      `invalid network config: ipvlanMode ${JSON.stringify(mode)}, but the ipvlan links of master ${master.name} are in mode ${current}`,
      'the ipvlan mode belongs to the master (the kernel applies the last one set to all its links): every network on one master must use the same ipvlanMode',
    );
  }
}

/** Runs `fn` holding an exclusive flock on `<stateDir>/ipvlan/<name>.lock` (polled, with a timeout). */
export async function withMasterLock<T>(stateDir: string, name: string, fn: () => Promise<T>): Promise<T> {
  const dir = join(stateDir, 'ipvlan');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, `${name}.lock`);
  const fd = openSync(path, constants.O_RDONLY | constants.O_CREAT, 0o600);
  const { flock, flockOps } = native();
  try {
    const deadline = Date.now() + LOCK_TIMEOUT_MS;
    for (let wait = 2; ; wait = Math.min(wait * 2, 50)) {
      try {
        flock(fd, flockOps.LOCK_EX | flockOps.LOCK_NB);
        break;
      } catch (err) {
        if ((err as { code?: string }).code !== 'EAGAIN') throw err;
        if (Date.now() > deadline)
          throw new Error(`timed out after ${LOCK_TIMEOUT_MS} ms waiting for ${path}`);
        await new Promise((r) => setTimeout(r, wait));
      }
    }
    return await fn();
  } finally {
    closeSync(fd); // releases the lock
  }
}

/** Creates (or finds) the node-side slave of `master`, up, in `mode`. */
export async function ensureHostLink(hostRtnl: Rtnl, master: Link, mode: IpvlanMode): Promise<Link> {
  const name = ipvlanHostLinkName(master);
  let link = await hostRtnl.findLink(name);
  if (link && (link.kind !== 'ipvlan' || link.linkIndex !== master.index)) {
    throw new CniError(
      CNI_ERR_INVALID_NETCONF,
      `invalid network config: ${name} exists but is not an ipvlan link of ${master.name}`,
      `kind ${link.kind ?? 'device'}; weft-cni uses ${name} to reach the pods on ${master.name}`,
    );
  }
  if (!link) {
    try {
      await hostRtnl.createIpvlan({ name, master: master.index, mode, flags: 'bridge' });
    } catch (err) {
      if (!isExists(err)) throw err;
    }
    // Its link-local address would be the master's (same MAC) and collide with the pods' in DAD.
    trySysctl(`net/ipv6/conf/${name}/addr_gen_mode`, 1);
    link = await hostRtnl.getLink(name);
  }
  if (!link.up) await hostRtnl.setUp(link.index);
  return link;
}

/**
 * The node's address its pods talk to (IPv4): the master's first global address, else the first
 * global address of any other interface of the node (an ENI node's IP may be on another ENI, or on
 * lo). The host routes use it as their source; in L2 the pod gets a pinned route to it (below).
 */
export async function nodeSourceAddress(hostRtnl: Rtnl, master: Link): Promise<string | undefined> {
  const SCOPE_UNIVERSE = 0;
  const global = (await hostRtnl.listAddresses({ family: 4 })).filter((a) => a.scope === SCOPE_UNIVERSE);
  const onMaster = global.find((a) => a.index === master.index);
  if (onMaster) return onMaster.address;
  const ipvlans = new Set(
    (await hostRtnl.listLinks()).filter((l) => l.kind === 'ipvlan').map((l) => l.index),
  );
  return global.find((a) => !ipvlans.has(a.index))?.address;
}

/** Host route (from `src`, the node's address) and, in L2, the pinned neighbour for each pod address. */
export async function addPodRoutes(
  hostRtnl: Rtnl,
  hostLink: Link,
  master: Link,
  mode: IpvlanMode,
  ips: readonly string[],
  src?: string,
): Promise<void> {
  for (const ip of hostReachable(mode, ips)) {
    if (mode === 'l2')
      await hostRtnl.replaceNeighbour({ dev: hostLink.index, address: ip, lladdr: master.mac! });
    const from = src && familyOf(src) === familyOf(ip) ? { src } : {};
    await hostRtnl.replaceRoute({ dst: hostPrefix(ip), dev: hostLink.index, scope: 'link', ...from });
  }
}

/**
 * L2, inside the pod: the node's address as a /32 out of the pod interface, its neighbour pinned to
 * the master's MAC (the pod's own). The pod's packets to the node then never depend on ARP (in a
 * VPC the gateway answers ARP for every address of the subnet too): the ipvlan switch finds no
 * slave with that address and hands them to the master, i.e. to the node.
 */
export async function pinNodeRoute(
  podRtnl: Rtnl,
  podLink: Link,
  master: Link,
  nodeAddress: string,
): Promise<void> {
  await podRtnl.replaceNeighbour({ dev: podLink.index, address: nodeAddress, lladdr: master.mac! });
  await podRtnl.replaceRoute({ dst: hostPrefix(nodeAddress), dev: podLink.index, scope: 'link' });
}

/** The pod addresses the node reaches through the slave: in L2 only IPv4 (no proxy NDP, see above). */
export function hostReachable(mode: IpvlanMode, ips: readonly string[]): string[] {
  return mode === 'l2' ? ips.filter((ip) => familyOf(ip) === 4) : [...ips];
}

/** Removes what addPodRoutes made; absent entries (or an absent slave) are fine. */
export async function removePodRoutes(
  hostRtnl: Rtnl,
  hostLinkName: string,
  ips: readonly string[],
): Promise<void> {
  const link = await hostRtnl.findLink(hostLinkName);
  if (!link || link.kind !== 'ipvlan') return;
  for (const ip of ips) {
    await hostRtnl.deleteRoute({ dst: hostPrefix(ip), dev: link.index }).catch(ignoreNotFound);
    await hostRtnl.deleteNeighbour({ dev: link.index, address: ip }).catch(ignoreNotFound);
  }
}

/** The host routes through the slave for these addresses (CHECK). */
export async function missingPodRoutes(
  hostRtnl: Rtnl,
  hostLinkName: string,
  ips: readonly string[],
): Promise<string[]> {
  const link = await hostRtnl.findLink(hostLinkName);
  if (!link) return [...ips];
  const have = new Set<string>();
  for (const family of [4, 6] as const)
    for (const r of await hostRtnl.listRoutes({ family, dev: link.index })) have.add(r.dst);
  return ips.filter((ip) => !have.has(hostPrefix(ip)));
}

/** Deletes the slave when no pod route uses it any more. Returns whether it was deleted. */
export async function removeHostLinkIfUnused(hostRtnl: Rtnl, hostLinkName: string): Promise<boolean> {
  const link = await hostRtnl.findLink(hostLinkName);
  if (!link || link.kind !== 'ipvlan') return false;
  for (const family of [4, 6] as const) {
    const routes = await hostRtnl.listRoutes({ family, dev: link.index });
    if (routes.some((r) => r.protocol !== RTPROT_KERNEL)) return false;
  }
  await hostRtnl.deleteLink(link.index).catch(ignoreNotFound);
  return true;
}

function trySysctl(key: string, value: number): void {
  try {
    Netns.host().writeSysctl(key, value);
  } catch {
    /* no IPv6 on this node */
  }
}

function ignoreNotFound(err: unknown): void {
  if (!isNotFound(err)) throw err;
}
