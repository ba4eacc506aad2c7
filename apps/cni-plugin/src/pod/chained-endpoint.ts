/**
 * What the chained modes (`chainingMode`: generic-veth, terway) share. In a chain weft-cni runs
 * after the plugin that made the pod's interface and got its addresses (flannel, bridge, ptp,
 * terway...). weft makes no link, address or route: it finds the pod interface the previous
 * plugin reported, finds what the datapath attaches to (the host-side veth peer, or for an IPvlan
 * pod the pod interface itself), registers the endpoint with the agent (degraded: attaches the
 * datapath itself and queues the registration) and returns the previous result unchanged, so the
 * plugins after it (portmap, bandwidth, tuning...) see exactly what they would without weft.
 *
 * DEL, CHECK and GC only undo or verify what weft added: the agent endpoint (or the degraded
 * attachment and its queue entry) and the attachment record. Links belong to the previous plugin.
 */
import { realpathSync } from 'node:fs';
import {
  CniError,
  CNI_ERR_INVALID_NETCONF,
  type CniContext,
  type CniInterface,
  type CniResult,
} from '@weft/cni';
import type { EndpointMode } from '@weft/agent-api';
import { openRtnl, type Link, type Rtnl } from '@weft/netlink';
import { Netns } from '@weft/netns';
import { agentKnows, agentStatus, registerEndpoint, removeEndpoint, type Registered } from './agent-link';
import { AttachmentStore, type AttachmentRecord } from './attachment-store';
import { parseWeftConf, type WeftConf } from './pod-conf';
import { checkFailed, hostPrefix } from './pod-addressing';
import { registrationBase } from './registration';
import type { ModeHandlers } from '../modes/registry';

export type ChainingModeName = Extract<EndpointMode, 'generic-veth' | 'terway'>;
const CHAINED_MODES: readonly EndpointMode[] = ['generic-veth', 'terway'];

/** The pod interface of a prevResult: its index in `interfaces` and its addresses. */
export interface PrevPodInterface {
  index: number;
  iface: CniInterface;
  /** CIDRs exactly as the prevResult has them (e.g. "10.244.1.5/24"). */
  cidrs: string[];
  /** The same without the prefix length (what the agent and the datapath take). */
  ips: string[];
}

/** What the datapath hooks onto, as a flavour resolved it. */
export type ChainedAttach =
  | { kind: 'veth'; podLink: Link; host: Link; parentDevice?: string }
  | { kind: 'in-pod'; podLink: Link; parentDevice?: string };

/** The attachment record of a chained mode: the shared record plus the host peer's ifindex. */
export interface ChainedRecord extends AttachmentRecord {
  hostIfindex?: number;
  podIfindex?: number;
  attachInPod?: boolean;
}

/** Where a flavour looks things up: rtnetlink sockets in the host and in the pod namespace. */
export interface ChainedLinks {
  hostRtnl: Rtnl;
  podRtnl: Rtnl;
}

/** What differs between generic-veth and terway. */
export interface ChainedFlavour {
  mode: ChainingModeName;
  /** Finds what to attach to for the pod link; throws error 7 when it is not this flavour's shape. */
  resolve(ctx: CniContext, w: WeftConf, pod: PrevPodInterface, podLink: Link, links: ChainedLinks): Promise<ChainedAttach>;
  /** CHECK: the links still are what the record says (throws via checkFailed). */
  verify(record: ChainedRecord, podLink: Link, links: ChainedLinks): Promise<void>;
}

function invalid(msg: string, details?: string): never {
  throw new CniError(CNI_ERR_INVALID_NETCONF, msg, details);
}

function samePath(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

/**
 * The pod interface of `prev`: an interface with a `sandbox` that is either CNI_NETNS or named
 * CNI_IFNAME (the name is preferred when both exist, as more than one interface may live in the
 * pod), and the addresses whose `interface` index points at it. Error 7 when there is none.
 */
export function prevPodInterface(prev: CniResult, ctx: Pick<CniContext, 'netns' | 'ifname'>): PrevPodInterface {
  const ifs = prev.interfaces ?? [];
  const inPod = ifs.map((iface, index) => ({ iface, index })).filter((c) => !!c.iface.sandbox);
  const byName = inPod.filter((c) => c.iface.name === ctx.ifname);
  const inThisNetns = inPod.filter((c) => ctx.netns !== '' && samePath(c.iface.sandbox!, ctx.netns));
  const pick =
    byName.find((c) => ctx.netns !== '' && samePath(c.iface.sandbox!, ctx.netns)) ??
    byName[0] ??
    (inThisNetns.length === 1 ? inThisNetns[0] : undefined);
  if (!pick) {
    const seen = ifs.map((i) => (i.sandbox ? `${i.name} (in ${i.sandbox})` : i.name)).join(', ') || 'none';
    invalid(
      `invalid network config: prevResult has no pod interface ${ctx.ifname} in ${ctx.netns || 'the pod'}`,
      `weft-cni chained after another plugin needs that plugin to report the pod's interface with its "sandbox"; interfaces in prevResult: ${seen}`,
    );
  }
  const cidrs = (prev.ips ?? []).filter((ip) => ip.interface === pick.index).map((ip) => ip.address);
  if (cidrs.length === 0) {
    invalid(
      `invalid network config: prevResult has no IP address on the pod interface ${pick.iface.name}`,
      `its addresses must name it with "interface": ${pick.index} (ips in prevResult: ${JSON.stringify(prev.ips ?? [])})`,
    );
  }
  return { index: pick.index, iface: pick.iface, cidrs, ips: cidrs.map((c) => c.split('/')[0]!) };
}

/**
 * The host-side peer of a veth inside the pod: the link at the pod link's peer ifindex in the
 * host namespace, accepted only if it is a veth whose own peer index points back at the pod link
 * and whose peer lives in another namespace.
 */
export async function hostPeerOf(hostRtnl: Rtnl, podLink: Link): Promise<Link | undefined> {
  if (podLink.kind !== 'veth' || podLink.linkIndex === undefined || podLink.linkNetnsId === undefined)
    return undefined;
  const host = await hostRtnl.findLink(podLink.linkIndex);
  if (!host || host.kind !== 'veth' || host.linkIndex !== podLink.index || host.linkNetnsId === undefined)
    return undefined;
  return host;
}

/** Resolves the veth shape shared by both flavours: error 7 when the pod link has no host peer. */
export async function resolveVeth(pod: PrevPodInterface, podLink: Link, links: ChainedLinks): Promise<ChainedAttach & { kind: 'veth' }> {
  const host = await hostPeerOf(links.hostRtnl, podLink);
  if (!host) {
    invalid(
      `invalid network config: the pod interface ${pod.iface.name} has no veth peer in the host namespace`,
      podLink.kind === 'veth'
        ? `its peer (ifindex ${podLink.linkIndex ?? '?'}) is not a veth pointing back at it in the host namespace`
        : `it is a ${podLink.kind ?? 'device'}, not a veth${podLink.kind === 'ipvlan' ? ' (IPvlan pods: use "chainingMode": "terway")' : ''}`,
    );
  }
  return { kind: 'veth', podLink, host };
}

/** CHECK of the veth shape: the host peer is still there, still paired, and still the recorded one. */
export async function verifyVeth(record: ChainedRecord, podLink: Link, links: ChainedLinks): Promise<void> {
  const host = await hostPeerOf(links.hostRtnl, podLink);
  if (!host) checkFailed(`${podLink.name} has no veth peer in the host namespace any more`);
  if (record.hostIfname && host.name !== record.hostIfname)
    checkFailed(`the host peer of ${podLink.name} is ${host.name}, weft registered ${record.hostIfname}`);
  if (record.hostIfindex !== undefined && host.index !== record.hostIfindex)
    checkFailed(`the host peer ${host.name} has ifindex ${host.index}, weft registered ${record.hostIfindex}`);
  if (!host.up) checkFailed(`the host peer ${host.name} is down`);
}

/** A device named by the conf that must exist in the host namespace (an ENI, an IPvlan master). */
export async function hostDevice(hostRtnl: Rtnl, key: string, name: string): Promise<Link> {
  const link = await hostRtnl.findLink(name);
  if (!link) invalid(`invalid network config: ${key} ${JSON.stringify(name)} does not exist in the host namespace`);
  return link;
}

/** The handlers of a chained mode. */
export function chainedMode(flavour: ChainedFlavour): ModeHandlers {
  return {
    add: (ctx) => add(ctx, flavour),
    del: (ctx) => del(ctx),
    check: (ctx) => check(ctx, flavour),
    gc: (ctx) => gc(ctx),
    status: async (ctx) => agentStatus(parseWeftConf(ctx.conf)),
  };
}

function requirePrev(ctx: CniContext): CniResult {
  if (!ctx.prevResult)
    invalid(`invalid network config: chainingMode ${JSON.stringify(ctx.conf.chainingMode)} needs a prevResult on ${ctx.command}`);
  return ctx.prevResult;
}

async function withPod<T>(ctx: CniContext, fn: (links: ChainedLinks, pod: Netns) => Promise<T>): Promise<T> {
  let pod: Netns;
  try {
    pod = Netns.open(ctx.netns);
  } catch (err) {
    throw new CniError(
      CNI_ERR_INVALID_NETCONF,
      `cannot open the pod's network namespace ${ctx.netns}`,
      (err as Error).message,
    );
  }
  const hostRtnl = openRtnl();
  let podRtnl: Rtnl | undefined;
  try {
    podRtnl = openRtnl(pod);
    return await fn({ hostRtnl, podRtnl }, pod);
  } finally {
    podRtnl?.close();
    hostRtnl.close();
    pod.close();
  }
}

async function add(ctx: CniContext, flavour: ChainedFlavour): Promise<CniResult> {
  const w = parseWeftConf(ctx.conf);
  const prev = requirePrev(ctx);
  const podIf = prevPodInterface(prev, ctx);
  const base = registrationBase(ctx, w, flavour.mode);
  const store = new AttachmentStore(w.stateDir, w.network);
  const attach = await withPod(ctx, async (links) => {
    const podLink = await links.podRtnl.findLink(podIf.iface.name);
    if (!podLink) {
      invalid(
        `invalid network config: prevResult names the pod interface ${podIf.iface.name}, but ${ctx.netns} has no such link`,
      );
    }
    return flavour.resolve(ctx, w, podIf, podLink, links);
  });

  const record: ChainedRecord = {
    containerId: ctx.containerId,
    ifname: ctx.ifname,
    network: w.network,
    mode: flavour.mode,
    netns: ctx.netns,
    ips: podIf.ips,
    podIfname: attach.podLink.name,
    podIfindex: attach.podLink.index,
    ...(attach.kind === 'veth' ? { hostIfname: attach.host.name, hostIfindex: attach.host.index } : { attachInPod: true }),
    ...(attach.parentDevice ? { parentDevice: attach.parentDevice } : {}),
    registeredWith: 'none',
    createdAt: new Date().toISOString(),
  };
  store.put(record); // first: GC can always find what this ADD registered
  let registered: Registered | undefined;
  try {
    registered = await registerEndpoint(
      w,
      {
        ...base,
        ips: podIf.ips,
        podIfname: attach.podLink.name,
        podMac: attach.podLink.mac,
        ...(attach.kind === 'veth'
          ? { hostIfname: attach.host.name, hostIfindex: attach.host.index, attachInPod: false }
          : { attachInPod: true }),
        ...(attach.parentDevice ? { parentDevice: attach.parentDevice } : {}),
      },
      ctx.logger,
    );
    store.put({ ...record, registeredWith: registered.registeredWith, endpointId: registered.endpointId });
  } catch (err) {
    // Nothing of weft's may stay behind a failed ADD; the previous plugin's links are not ours.
    if (registered) {
      await removeEndpoint(w, ctx, ctx.logger, registered.registeredWith).catch((e: Error) =>
        ctx.logger.error('ADD rollback: endpoint removal failed', { err: e.message }),
      );
    }
    store.remove(ctx.containerId, ctx.ifname);
    throw err;
  }
  // The previous result, unchanged: weft adds no interface, address or route of its own.
  return { ...prev, cniVersion: ctx.conf.cniVersion };
}

/** Never fails for an absent agent, netns or interface: only weft's endpoint and record go. */
async function del(ctx: CniContext): Promise<void> {
  const w = parseWeftConf(ctx.conf);
  const store = new AttachmentStore(w.stateDir, w.network);
  const record = store.get(ctx.containerId, ctx.ifname);
  try {
    await removeEndpoint(w, ctx, ctx.logger, record?.registeredWith);
  } catch (err) {
    // Left to the agent's own GC: a failed DEL would stop the runtime from running the rest of the chain.
    ctx.logger.warn('DEL: endpoint removal failed', { err: (err as Error).message });
  }
  store.remove(ctx.containerId, ctx.ifname);
}

async function check(ctx: CniContext, flavour: ChainedFlavour): Promise<void> {
  const w = parseWeftConf(ctx.conf);
  const prev = ctx.prevResult;
  if (!prev) invalid('CHECK needs a prevResult (the result of ADD)');
  const podIf = prevPodInterface(prev, ctx);
  const record = new AttachmentStore(w.stateDir, w.network).get(ctx.containerId, ctx.ifname) as ChainedRecord | undefined;
  if (!record) checkFailed(`weft-cni has no record of ${ctx.containerId}:${ctx.ifname} in network ${w.network}`);
  if (record.mode !== flavour.mode)
    checkFailed(`${ctx.containerId}:${ctx.ifname} was added in mode ${record.mode}, not ${flavour.mode}`);
  let pod: Netns | undefined;
  try {
    pod = Netns.open(ctx.netns);
  } catch (err) {
    checkFailed(`cannot open the pod's network namespace ${ctx.netns}: ${(err as Error).message}`);
  }
  const hostRtnl = openRtnl();
  const podRtnl = openRtnl(pod);
  try {
    const links = { hostRtnl, podRtnl };
    const podLink = await podRtnl.findLink(podIf.iface.name);
    if (!podLink) checkFailed(`interface ${podIf.iface.name} does not exist in the pod's namespace`);
    if (podIf.iface.mac && podIf.iface.mac.toLowerCase() !== podLink.mac?.toLowerCase())
      checkFailed(`${podLink.name} has MAC ${podLink.mac}, the result says ${podIf.iface.mac}`);
    if (record.podIfindex !== undefined && record.podIfindex !== podLink.index)
      checkFailed(`${podLink.name} has ifindex ${podLink.index}, weft registered ${record.podIfindex}`);
    const have = new Set(
      (await podRtnl.listAddresses({ dev: podLink.index })).map((a) => `${a.address}/${a.prefixLength}`),
    );
    for (const cidr of podIf.cidrs) {
      if (!have.has(cidr) && !have.has(hostPrefix(cidr.split('/')[0]!)))
        checkFailed(`${podLink.name} lacks address ${cidr}`);
    }
    const recorded = new Set(record.ips);
    for (const ip of podIf.ips) if (!recorded.has(ip)) checkFailed(`weft registered ${record.ips.join(', ')}, not ${ip}`);
    await flavour.verify(record, podLink, links);
  } finally {
    podRtnl.close();
    hostRtnl.close();
    pod.close();
  }
  const known = await agentKnows(w, ctx);
  if (known === false) checkFailed(`weft-agent has no endpoint for ${ctx.containerId}:${ctx.ifname}`);
}

/** Forgets endpoints and records of attachments the runtime no longer has. Never touches links. */
async function gc(ctx: CniContext): Promise<void> {
  const w = parseWeftConf(ctx.conf);
  const store = new AttachmentStore(w.stateDir, w.network);
  const valid = new Set(ctx.validAttachments.map((a) => `${a.containerID}:${a.ifname}`));
  for (const r of store.list()) {
    if (!CHAINED_MODES.includes(r.mode) || valid.has(`${r.containerId}:${r.ifname}`)) continue;
    ctx.logger.info('GC: removing a stale chained attachment', { containerId: r.containerId, ifname: r.ifname });
    try {
      await removeEndpoint(w, r, ctx.logger, r.registeredWith);
    } catch (err) {
      ctx.logger.warn('GC: endpoint removal failed', { err: (err as Error).message });
    }
    store.remove(r.containerId, r.ifname);
  }
}
